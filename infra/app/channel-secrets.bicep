// The alert-channel secrets (Teams webhook URL, SMTP password) in the channel vault, a
// second vault created for them alone (keyvault.bicep), and the watchdog's read access there.
//
// Why a second vault rather than per-secret role assignments in the staging vault: the
// watchdog's write role must cover the staging vault as a whole (its secrets do not exist at
// deployment time), and role grants only add up: nothing in a template can take two secrets
// back out of it. Here the watchdog holds Key Vault Secrets User and nothing else, so no
// rotation, bug or stolen token of the watchdog can overwrite where alerts go; the deployment
// itself writes the values through Resource Manager. The operator gets nothing in this vault.

@description('Name of the channel vault (Azure RBAC authorization), in this resource group.')
param vaultName string

@description('Principal ID of the watchdog managed identity.')
param principalId string

@secure()
param teamsWebhookUrl string = ''

@secure()
param smtpPassword string = ''

// Key Vault Secrets User (read a value and its metadata)
var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// Role: Key Vault Secrets User, on the channel vault only.
// Why: the Function's settings WATCHDOG_TEAMS_WEBHOOK_URL and WATCHDOG_SMTP_PASSWORD are Key
// Vault references that App Service resolves with this identity (keyVaultReferenceIdentity
// in function.bicep); reading them is all it needs. The vault holds nothing but these
// secrets, so vault scope is as narrow as the secrets themselves.
resource watchdogChannelReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'pat-watchdog: resolve the Key Vault references of its alert channels'
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
