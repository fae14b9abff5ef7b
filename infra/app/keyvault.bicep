// A dedicated vault, used twice by main.bicep:
// - the staging vault (unless an existing one is named): staged PATs, the previous token,
//   the token secret in reference mode. Dedicated is the least-privilege choice: the
//   watchdog's custom rotation role (keyvault-access.bicep) then covers those secrets and
//   nothing of anyone else.
// - the channel vault (when a Teams webhook URL or SMTP password is given): only the
//   alert-channel secrets, read-only to the watchdog (channel-secrets.bicep).

param name string
param location string
param tags object = {}
param logAnalyticsId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC only: no access policies, so every permission is a role assignment a
    // reviewer can see in this folder.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // A deleted staged PAT or previous token (the rollback copy) stays recoverable for 90
    // days and cannot be purged early. The name stays reserved as long: see docs/deploy.md, "Remove it".
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
  // checkov:skip=CKV_AZURE_109:A Flex Consumption app without VNet integration calls Key Vault from no fixed IP range, and the person staging a PAT calls it from a laptop, so a default-deny firewall would lock both out. Access is Azure RBAC only (no access policies) and audited to Log Analytics. VNet integration with a private endpoint is the hardening path (docs/deploy.md).
  // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access is how the watchdog without VNet integration, and the person staging a PAT, reach the vault; every call needs an Entra ID token and a role on this vault.
}

// Diagnostic logs: every secret read, write and tag update (the rotation protocol's steps)
// is audited in Log Analytics.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'keyvault-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
