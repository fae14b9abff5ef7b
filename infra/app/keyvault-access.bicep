// Access to the one Key Vault the watchdog uses (created by keyvault.bicep or named by the
// keyVaultName parameter), deployed at that vault's resource group. Also stores the
// alert-channel secrets, so that they reach the app only as Key Vault references.

@description('Name of the vault (must use Azure RBAC authorization).')
param vaultName string

@description('Principal ID of the watchdog managed identity.')
param principalId string

@description('Object ID of the person or group who stages PATs; empty: no grant.')
param operatorPrincipalId string = ''

@secure()
param teamsWebhookUrl string = ''

@secure()
param smtpPassword string = ''

// Key Vault Secrets Officer
var secretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// Role: Key Vault Secrets Officer, on this vault only (not the resource group, not the
// subscription).
// Why: the watchdog lists and reads the staged secret's versions (getting the candidate
// PAT), sets new versions (the previous-token secret, and the token secret when the
// Aggregator setting is a Key Vault reference: docs/rotation.md) and rewrites version tags
// (watchdog-status, rotated-at, ...). It also resolves the Key Vault references of its own
// settings. Key Vault Secrets User is read-only: it cannot set a version or update tags, so
// rotation would fail at step 2. A role assignment at one secret's scope is narrower, but
// the staged and previous secrets do not exist at deployment time (the person creates the
// first staged version), so the vault is the narrowest scope that works; use a vault that
// holds nothing else (the default creates one).
resource watchdogSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Role: Key Vault Secrets Officer, on this vault only, for the operator (optional).
// Why: staging a replacement PAT is `az keyvault secret set` (docs/rotation.md), which needs set
// on secrets; in an RBAC vault nobody, not even the vault's creator, has that by default.
// Only granted when operatorPrincipalId is given (azd passes the signed-in user).
resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, secretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficerRoleId)
    principalId: operatorPrincipalId
  }
}

module teamsWebhookSecret 'secret.bicep' = if (!empty(teamsWebhookUrl)) {
  name: 'pat-watchdog-teams-webhook-secret'
  params: {
    vaultName: vault.name
    secretName: 'pat-watchdog-teams-webhook-url'
    value: teamsWebhookUrl
    contentType: 'text/uri-list'
  }
}

module smtpPasswordSecret 'secret.bicep' = if (!empty(smtpPassword)) {
  name: 'pat-watchdog-smtp-password-secret'
  params: {
    vaultName: vault.name
    secretName: 'pat-watchdog-smtp-password'
    value: smtpPassword
    contentType: 'text/plain'
  }
}

output vaultUri string = vault.properties.vaultUri
output teamsWebhookSecretUri string = empty(teamsWebhookUrl) ? '' : teamsWebhookSecret.outputs.secretUri
output smtpPasswordSecretUri string = empty(smtpPassword) ? '' : smtpPasswordSecret.outputs.secretUri
