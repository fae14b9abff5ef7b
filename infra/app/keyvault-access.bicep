// Access to the staging vault: the vault that holds the staged PATs, the previous token and,
// in reference mode, the token secret Aggregator reads (created by keyvault.bicep or named by
// the keyVaultName parameter). Deployed at that vault's resource group, so the custom roles
// below are assignable there only.
//
// Three principals, three separate grants, none of them a built-in "Officer" role (which
// also deletes, purges, backs up and restores):
//   the watchdog   custom role: read, list, set and tag secrets
//   the operator   custom role: set and list secrets, never read a value
//   the Aggregator Key Vault Secrets User on its token secret only (reference mode)
// The alert-channel secrets are not here: they live in a vault of their own where the
// watchdog can only read (channel-secrets.bicep), so a rotation can never overwrite them.

@description('Name of the vault (must use Azure RBAC authorization).')
param vaultName string

@description('Principal ID of the watchdog managed identity.')
param principalId string

@description('Object ID of the person or group who stages PATs; empty: no grant.')
param operatorPrincipalId string = ''

@allowed([
  'setting'
  'reference'
])
@description('reference: the Aggregator token setting is a Key Vault reference to tokenSecretName in this vault; the Aggregator app gets read access to that secret only.')
param tokenMode string = 'setting'

@description('Secret that holds the PAT the Aggregator app reads in reference mode (never the staged or previous secret).')
param tokenSecretName string = 'aggregator-pat'

@description('Principal ID of the Aggregator app\'s system-assigned identity; required in reference mode.')
param aggregatorPrincipalId string = ''

var referenceMode = tokenMode == 'reference'
// Key Vault Secrets User (read a value and its metadata)
var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Role names are unique per tenant: the suffix tells same-named groups of two subscriptions apart.
var roleSuffix = '${resourceGroup().name}, ${take(uniqueString(resourceGroup().id), 6)}'
var watchdogRoleName = 'pat-watchdog Key Vault rotation (${roleSuffix})'
var operatorRoleName = 'pat-watchdog Key Vault staging (${roleSuffix})'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// The watchdog's data actions, and nothing else (Microsoft's operations reference,
// Microsoft.KeyVault DataActions):
//   getSecret     read a version's value: the candidate PAT, a reference's token
//   readMetadata  list the staged secret's versions with their tags and dates
//   setSecret     write a new version: the previous token (rollback copy), the token
//                 secret in reference mode, a PAT created in auto rotation, the sign-in
//   update        rewrite a version's tags (watchdog-status, rotated-at, fingerprint)
// No delete, purge, backup, restore or recover: a stolen identity can add versions but not
// destroy any (purge protection keeps even a deletion by someone else recoverable).
resource watchdogSecretsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'pat-watchdog-keyvault-rotation')
  properties: {
    roleName: watchdogRoleName
    description: 'Lets pat-watchdog read, list, set and tag Key Vault secrets. No delete, purge, backup or restore.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/secrets/getSecret/action'
          'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
          'Microsoft.KeyVault/vaults/secrets/setSecret/action'
          'Microsoft.KeyVault/vaults/secrets/update/action'
        ]
        notDataActions: []
      }
    ]
  }
}

// The operator stages PATs without being able to read any: `az keyvault secret set` needs
// setSecret (tags and expiry travel with the value), `az keyvault secret list-versions`
// and `show` without the value need readMetadata. No getSecret: the previous tokens, the
// staged ones and the sign-in are write-only to the operator.
resource operatorStagingRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'pat-watchdog-keyvault-staging')
  properties: {
    roleName: operatorRoleName
    description: 'Lets a person stage a PAT for pat-watchdog (set a secret version, list versions) without reading any secret value.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/secrets/setSecret/action'
          'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
        ]
        notDataActions: []
      }
    ]
  }
}

// Role: the custom "pat-watchdog Key Vault rotation" role above, on this vault only (not
// the resource group, not the subscription).
// Why: the rotation protocol reads the staged versions, writes new versions (previous
// token, token secret) and tags them (docs/rotation.md). The vault is the narrowest scope
// that works: the staged and previous secrets do not exist at deployment time (the
// operator creates the first staged version), and with aggregatorAccessScope =
// 'resourceGroup' their names are per instance. Use a vault that holds nothing else (the
// default creates one): the role covers every secret in it.
resource watchdogSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, 'pat-watchdog-keyvault-rotation')
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', watchdogSecretsRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'pat-watchdog: read, list, set and tag the staging secrets'
  }
}

// Role: the custom "pat-watchdog Key Vault staging" role above, on this vault only, for the
// operator (optional).
// Why: staging a replacement PAT is `az keyvault secret set` (docs/rotation.md); in an RBAC
// vault nobody, not even the vault's creator, may do that by default. Vault scope because
// the staged secret does not exist before the first staging. The operator can therefore
// also write a version of the previous or token secret, but read none of them.
resource operatorStaging 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, 'pat-watchdog-keyvault-staging')
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', operatorStagingRole.name)
    principalId: operatorPrincipalId
    description: 'pat-watchdog: stage PATs without reading secret values'
  }
}

// The token secret Aggregator reads in reference mode. Not created here: a template that
// wrote it would overwrite the live PAT on every deployment. It must exist before the
// deployment that switches to reference mode (docs/reference.md, "Token in Key Vault").
resource tokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: tokenSecretName
}

// Role: Key Vault Secrets User, on the one token secret only (reference mode), for the
// Aggregator app's own identity.
// Why: App Service resolves the Aggregator's Key Vault reference with that identity; it
// needs to read this secret and nothing else of the vault (not the staged or previous
// PATs, not the sign-in).
resource aggregatorTokenReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (referenceMode) {
  name: guid(tokenSecret.id, aggregatorPrincipalId, secretsUserRoleId)
  scope: tokenSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: aggregatorPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Aggregator: resolve its Key Vault reference to the PAT'
  }
}

output vaultUri string = vault.properties.vaultUri
// Versionless, as the reference must be in reference mode (the watchdog restarts the app
// instead of rewriting the setting).
output tokenSecretUri string = '${vault.properties.vaultUri}secrets/${tokenSecretName}/'
output watchdogRoleName string = watchdogRoleName
output operatorRoleName string = operatorRoleName
