// One alert-channel secret (Teams webhook URL, SMTP password) in the channel vault
// (channel-secrets.bicep), where the watchdog can only read. A module, not a conditional
// resource, so that the offline checks see its properties (checkov reads no properties of a
// resource declared with `if`).

param vaultName string
param secretName string

@secure()
param value string

@description('MIME-like hint for people browsing the vault.')
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: value
    contentType: contentType
    attributes: {
      enabled: true
    }
  }
  // checkov:skip=CKV_AZURE_41:A Teams webhook URL or an SMTP password has no expiry date of its own (its lifetime is set by the Workflow or the mail account); an invented date would be wrong and alert nobody. The watchdog's own PAT secrets do carry their expiry: the person sets it when staging (docs/rotation.md).
}

// Versionless: the app's Key Vault reference follows new versions (picked up within a day,
// or at once on restart).
output secretUri string = secret.properties.secretUri
