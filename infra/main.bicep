// pat-watchdog: the Azure side of the watchdog, deployed next to an existing Aggregator
// instance. `azd up` (azure.yaml) or `az deployment group create -f infra/main.bicep`, then
// `func azure functionapp publish <functionAppName>`; see docs/deploy.md.
//
// Every permission the watchdog's identity holds is granted in this folder, and only here:
//   app/aggregator-access.bicep  custom role on the Aggregator Function App (ARM settings;
//                                no config/write in reference mode)
//   app/keyvault-access.bicep    custom rotation role (get, list, set, tag secrets) on the
//                                staging vault; also the operator's staging role and, in
//                                reference mode, the Aggregator's read on its token secret
//   app/channel-secrets.bicep    Key Vault Secrets User on the channel vault (alert secrets)
//   app/storage.bicep            blob / table / queue data roles on its own storage account
//   app/monitoring.bicep         Monitoring Metrics Publisher on its own Application Insights
//   app/acs-access.bicep         custom email-send role on Azure Communication Services (optional)
// Nothing is granted at subscription scope, no built-in Owner/Contributor role is used, and
// no role held by the watchdog can delete, purge, back up or restore a secret, or change a
// role assignment. docs/reference.md, "If this identity were stolen", lists what it can do.
//
// Kept within what the offline checks can read : plain resources and
// local modules, no registry modules, literal values for security-relevant properties.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------
// Where
// ---------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Environment name; seeds the unique suffix of every resource name (azd: AZURE_ENV_NAME).')
param environmentName string = 'pat-watchdog'

@description('Region of the watchdog resources; it must offer the Flex Consumption plan.')
param location string = resourceGroup().location

// ---------------------------------------------------------------------------------------
// What to watch (docs/reference.md, "Settings"). Each parameter that sets a WATCHDOG_* setting is
// filled by azd from the environment variable of the same name, with the same default
// (main.parameters.json): `azd env set WATCHDOG_ROTATION auto && azd provision` changes it, and
// `azd env get-values` holds what the CLI reads on a laptop. The settings are replaced as a whole
// on every provision (siteConfig.appSettings in app/function.bicep): a setting changed by hand on
// the app lasts until the next one.
// ---------------------------------------------------------------------------------------

@minLength(1)
@description('WATCHDOG_AGGREGATOR_APP: ARM resource ID of the Aggregator Function App (/subscriptions/S/resourceGroups/G/providers/Microsoft.Web/sites/N); with aggregatorAccessScope = resourceGroup, that app or its resource group (/subscriptions/S/resourceGroups/G).')
param aggregatorAppId string

@allowed([
  'site'
  'resourceGroup'
])
@description('Where the custom Aggregator role is assigned: the site only (default), or its whole resource group, which lets the watchdog discover every Aggregator instance there (WATCHDOG_AGGREGATOR_APP becomes the group ID).')
param aggregatorAccessScope string = 'site'

@minLength(1)
@description('Azure DevOps organization URL, e.g. https://dev.azure.com/contoso.')
param devOpsOrgUrl string

@description('WATCHDOG_DEVOPS_VSSPS_URL: token service base URL; empty derives it from the organization URL.')
param devOpsVsspsUrl string = ''

@description('WATCHDOG_TOKEN_SETTING: app setting of the Aggregator app that holds the PAT.')
param tokenSetting string = 'Aggregator_VstsToken'

@allowed([
  'setting'
  'reference'
])
@description('setting: the PAT is the plain value of the token setting and the watchdog rewrites the settings (its Aggregator role holds config/write). reference: the token setting is a versionless Key Vault reference to tokenSecretName in the staging vault; the watchdog writes the secret and restarts the app, and holds no config/write. docs/reference.md, "Token in Key Vault".')
param tokenMode string = 'setting'

@description('Reference mode: the secret in the staging vault that the Aggregator token setting references. It must exist before the deployment (docs/deploy.md).')
param tokenSecretName string = 'aggregator-pat'

@description('Reference mode: principal ID of the Aggregator app\'s system-assigned identity (az functionapp identity show --query principalId); it gets read access to tokenSecretName only.')
param aggregatorPrincipalId string = ''

@description('Name of an existing Key Vault (RBAC authorization) to use as the staging vault; empty creates a dedicated vault in this resource group. The watchdog may read, set and tag every secret in it.')
param keyVaultName string = ''

@description('Resource group of that existing vault (same subscription as this deployment); empty: this resource group.')
param keyVaultResourceGroup string = ''

@description('WATCHDOG_REFERENCE_VAULTS: further vault URLs (comma-separated) a Key Vault reference in the token setting may point to; the watchdog needs read access there, which this template does not grant.')
param referenceVaults string = ''

@description('WATCHDOG_STAGED_SECRET; with aggregatorAccessScope = resourceGroup, {name}- is put in front unless it holds {name}.')
param stagedSecretName string = 'aggregator-pat-staged'
@description('WATCHDOG_PREVIOUS_SECRET; {name}- in front as for stagedSecretName.')
param previousSecretName string = 'aggregator-pat-previous'

@allowed([
  'off'
  'staged'
  'auto'
])
@description('off: never write to Aggregator. staged: rotate from a replacement a person staged in Key Vault. auto: the watchdog creates the replacement itself with a person\'s delegated sign-in (run `pat-watchdog login` once after deploying; docs/reference.md, "Hands-free rotation").')
param rotation string = 'staged'

@description('auto rotation: validity in days of a PAT the watchdog creates (an organization policy may cap it).')
@minValue(1)
@maxValue(365)
param patLifetimeDays int = 90

@description('auto rotation: revoke a replaced PAT the watchdog created this many days after the rotation; off: never.')
param revokeAfterDays string = '7'

@description('auto rotation: the secret in the staging vault that holds the delegated sign-in (MSAL token cache).')
param signinSecretName string = 'pat-watchdog-signin'

@description('auto rotation: application (client) ID of the dedicated public client for the sign-in (docs/deploy.md, "The sign-in app registration"); empty leaves WATCHDOG_SIGNIN_CLIENT_ID unset (the Azure CLI\'s client, which the doctor reports as SIGNIN_CLIENT_BROAD).')
param signinClientId string = ''

param rotateWithinDays int = 14
param warnDays string = '30,14,7,3,1'
param criticalDays int = 3
@description('Scopes Aggregator\'s runtime needs (missing: CRITICAL).')
param requiredScopes string = 'vso.work_write'

@description('Aggregator\'s documented scopes (missing: WARNING; a replacement never narrows them).')
param recommendedScopes string = 'vso.identity vso.project vso.serviceendpoint_manage vso.work_full'

@description('WATCHDOG_REENABLE_SUBSCRIPTIONS: re-enable the service hook subscriptions Azure DevOps disabled, once the token works.')
param reenableSubscriptions bool = true

@description('Last-resort expiry of the current PAT (ISO date); empty when Key Vault or the listing knows it.')
param patExpiresOn string = ''

@description('Authorization ID that picks the current PAT in the token listing; optional.')
param patAuthorizationId string = ''

@description('NCRONTAB schedule of the timer, in UTC.')
param schedule string = '0 0 6 * * *'

param repeatHours int = 20
param stateTable string = 'patwatchdog'
param concurrency int = 8

@description('Storage queue for fan-out over many instances (docs/reference.md, "Many instances"); empty keeps fan-out off.')
param fanoutQueue string = ''

// ---------------------------------------------------------------------------------------
// Alert channels. Secrets go to the channel vault (read-only to the watchdog) and reach
// the app as Key Vault references.
// ---------------------------------------------------------------------------------------

@secure()
@description('Teams Workflows webhook URL; stored in the channel vault, the app setting is a Key Vault reference. Empty: no Teams alerts.')
param teamsWebhookUrl string = ''

@description('Alert recipients, comma-separated. Empty: no email alerts.')
param emailTo string = ''

@description('Sender address (an ACS connected-domain address, or the SMTP account).')
param emailFrom string = ''

@description('Resource ID of an Azure Communication Services resource for email with the managed identity; empty: no ACS.')
param acsResourceId string = ''

param smtpHost string = ''
param smtpPort int = 587
param smtpUsername string = ''

@secure()
@description('SMTP password; stored in the channel vault, the app setting is a Key Vault reference.')
param smtpPassword string = ''

param smtpStartTls bool = true

// ---------------------------------------------------------------------------------------
// Who watches the watchdog, and who stages the PAT
// ---------------------------------------------------------------------------------------

@minLength(3)
@description('Email address that Azure Monitor notifies when a watchdog run fails or no run succeeded for 26 hours.')
param alertEmail string

@description('Name of the timer function in function_app.py, as Application Insights records it (operation_Name).')
param timerFunctionName string = 'watchdog_timer'

@description('Name of the poison-queue function in function_app.py (fan-out items that failed every attempt).')
param poisonFunctionName string = 'watchdog_instance_poison'

@description('Object ID of the person (or group) who stages PATs; gets the custom staging role (set and list secrets, never read a value) on the staging vault. azd fills in the signed-in user (AZURE_PRINCIPAL_ID). Empty: no grant.')
param operatorPrincipalId string = ''

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'pat-watchdog'
}
var functionAppName = 'func-patwatchdog-${token}'
var createVault = empty(keyVaultName)
var vaultName = createVault ? 'kv-patwd-${token}' : keyVaultName
var vaultResourceGroup = createVault || empty(keyVaultResourceGroup) ? resourceGroup().name : keyVaultResourceGroup
// The channel vault: only when there is a channel secret to keep.
var useChannelVault = !empty(teamsWebhookUrl) || !empty(smtpPassword)
var channelVaultName = 'kv-patwdc-${token}'

// /subscriptions/{2}/resourceGroups/{4}/providers/Microsoft.Web/sites/{8}, or the group alone
// (/subscriptions/{2}/resourceGroups/{4}) with aggregatorAccessScope = resourceGroup. ARM evaluates
// only the branch of `?:` that is taken (if() in "Template functions - logical").
var aggregatorParts = split(aggregatorAppId, '/')
var aggregatorSubscriptionId = aggregatorParts[2]
var aggregatorResourceGroup = aggregatorParts[4]
var aggregatorSiteName = length(aggregatorParts) > 8 ? aggregatorParts[8] : ''
var aggregatorGroupId = '/subscriptions/${aggregatorSubscriptionId}/resourceGroups/${aggregatorResourceGroup}'

var useAcs = !empty(acsResourceId)
var acsParts = split(acsResourceId, '/')

// environment().resourceManager ends with '/'; the setting is a base URL without it.
var resourceManager = environment().resourceManager
var armEndpoint = endsWith(resourceManager, '/') ? substring(resourceManager, 0, length(resourceManager) - 1) : resourceManager

// ---------------------------------------------------------------------------------------
// Identity: one user-assigned identity for the host (storage), Key Vault references and
// the watchdog itself. User-assigned so that its role assignments can be made before the
// app exists and survive a re-created app.
// ---------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-patwatchdog-${token}'
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-patwatchdog-${token}'
    applicationInsightsName: 'appi-patwatchdog-${token}'
    location: location
    tags: tags
    principalId: identity.properties.principalId
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: 'stpatwd${token}'
    location: location
    tags: tags
    principalId: identity.properties.principalId
    deploymentContainerName: 'app-package'
    stateTable: stateTable
    fanoutQueue: fanoutQueue
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module vault 'app/keyvault.bicep' = if (createVault) {
  name: 'keyvault'
  params: {
    name: vaultName
    location: location
    tags: tags
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module vaultAccess 'app/keyvault-access.bicep' = {
  name: 'keyvault-access'
  scope: resourceGroup(vaultResourceGroup)
  params: {
    vaultName: vaultName
    principalId: identity.properties.principalId
    operatorPrincipalId: operatorPrincipalId
    tokenMode: tokenMode
    tokenSecretName: tokenSecretName
    aggregatorPrincipalId: aggregatorPrincipalId
  }
  dependsOn: [
    vault
  ]
}

// Channel secrets live apart from the staging secrets, where the rotation cannot write
// (app/channel-secrets.bicep explains the choice).
module channelVault 'app/keyvault.bicep' = if (useChannelVault) {
  name: 'channel-keyvault'
  params: {
    name: channelVaultName
    location: location
    tags: tags
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module channelAccess 'app/channel-secrets.bicep' = if (useChannelVault) {
  name: 'channel-secrets'
  params: {
    vaultName: channelVaultName
    principalId: identity.properties.principalId
    teamsWebhookUrl: teamsWebhookUrl
    smtpPassword: smtpPassword
  }
  dependsOn: [
    channelVault
  ]
}

module aggregatorAccess 'app/aggregator-access.bicep' = {
  name: 'aggregator-access'
  scope: resourceGroup(aggregatorSubscriptionId, aggregatorResourceGroup)
  params: {
    siteName: aggregatorSiteName
    principalId: identity.properties.principalId
    accessScope: aggregatorAccessScope
    tokenMode: tokenMode
  }
}

module acsAccess 'app/acs-access.bicep' = if (useAcs) {
  name: 'acs-access'
  scope: resourceGroup(useAcs ? acsParts[2] : subscription().subscriptionId, useAcs ? acsParts[4] : resourceGroup().name)
  params: {
    communicationServiceName: useAcs ? acsParts[8] : ''
    principalId: identity.properties.principalId
  }
}

// ---------------------------------------------------------------------------------------
// App settings (docs/reference.md, "Settings"). Optional settings are left out when empty, so the app sees
// "not set" rather than an empty string.
// ---------------------------------------------------------------------------------------

var requiredSettings = {
  WATCHDOG_AGGREGATOR_APP: aggregatorAccessScope == 'resourceGroup' ? aggregatorGroupId : aggregatorAppId
  WATCHDOG_DEVOPS_ORG_URL: devOpsOrgUrl
  WATCHDOG_TOKEN_SETTING: tokenSetting
  WATCHDOG_ARM_ENDPOINT: armEndpoint
  WATCHDOG_KEY_VAULT_URL: 'https://${vaultName}${environment().suffixes.keyvaultDns}'
  // Watching a whole resource group may find several instances: they never share a secret.
  WATCHDOG_STAGED_SECRET: aggregatorAccessScope == 'resourceGroup' && !contains(stagedSecretName, '{name}') ? '{name}-${stagedSecretName}' : stagedSecretName
  WATCHDOG_PREVIOUS_SECRET: aggregatorAccessScope == 'resourceGroup' && !contains(previousSecretName, '{name}') ? '{name}-${previousSecretName}' : previousSecretName
  WATCHDOG_ROTATION: rotation
  WATCHDOG_PAT_LIFETIME_DAYS: string(patLifetimeDays)
  WATCHDOG_REVOKE_AFTER_DAYS: revokeAfterDays
  WATCHDOG_SIGNIN_SECRET: signinSecretName
  WATCHDOG_REENABLE_SUBSCRIPTIONS: reenableSubscriptions ? 'true' : 'false'
  WATCHDOG_ROTATE_WITHIN_DAYS: string(rotateWithinDays)
  WATCHDOG_WARN_DAYS: warnDays
  WATCHDOG_CRITICAL_DAYS: string(criticalDays)
  WATCHDOG_REQUIRED_SCOPES: requiredScopes
  WATCHDOG_RECOMMENDED_SCOPES: recommendedScopes
  WATCHDOG_SCHEDULE: schedule
  WATCHDOG_REPEAT_HOURS: string(repeatHours)
  WATCHDOG_STATE_TABLE: stateTable
  WATCHDOG_CONCURRENCY: string(concurrency)
}
var vsspsSetting = empty(devOpsVsspsUrl) ? {} : { WATCHDOG_DEVOPS_VSSPS_URL: devOpsVsspsUrl }
var expirySetting = empty(patExpiresOn) ? {} : { WATCHDOG_PAT_EXPIRES_ON: patExpiresOn }
var authorizationIdSetting = empty(patAuthorizationId) ? {} : { WATCHDOG_PAT_AUTHORIZATION_ID: patAuthorizationId }
var fanoutSetting = empty(fanoutQueue) ? {} : { WATCHDOG_FANOUT_QUEUE: fanoutQueue }
var referenceVaultsSetting = empty(referenceVaults) ? {} : { WATCHDOG_REFERENCE_VAULTS: referenceVaults }
var signinClientSetting = empty(signinClientId) ? {} : { WATCHDOG_SIGNIN_CLIENT_ID: signinClientId }
// A secret never sits in a setting: the setting is a Key Vault reference to the channel
// vault, which the platform resolves with the identity (keyVaultReferenceIdentity in
// app/function.bicep).
var teamsSetting = empty(teamsWebhookUrl) ? {} : {
  WATCHDOG_TEAMS_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${channelAccess.outputs.teamsWebhookSecretUri})'
}
var emailSettings = union(
  empty(emailTo) ? {} : { WATCHDOG_EMAIL_TO: emailTo },
  empty(emailFrom) ? {} : { WATCHDOG_EMAIL_FROM: emailFrom }
)
var acsSetting = useAcs ? { WATCHDOG_ACS_ENDPOINT: acsAccess.outputs.endpoint } : {}
var smtpSettings = empty(smtpHost) ? {} : {
  WATCHDOG_SMTP_HOST: smtpHost
  WATCHDOG_SMTP_PORT: string(smtpPort)
  WATCHDOG_SMTP_STARTTLS: smtpStartTls ? 'true' : 'false'
}
var smtpUsernameSetting = empty(smtpUsername) ? {} : { WATCHDOG_SMTP_USERNAME: smtpUsername }
var smtpPasswordSetting = empty(smtpPassword) ? {} : {
  WATCHDOG_SMTP_PASSWORD: '@Microsoft.KeyVault(SecretUri=${channelAccess.outputs.smtpPasswordSecretUri})'
}
var watchdogSettings = union(requiredSettings, vsspsSetting, expirySetting, authorizationIdSetting, fanoutSetting, referenceVaultsSetting, signinClientSetting, teamsSetting, emailSettings, acsSetting, smtpSettings, smtpUsernameSetting, smtpPasswordSetting)

module functionApp 'app/function.bicep' = {
  name: 'function'
  params: {
    name: functionAppName
    planName: 'plan-patwatchdog-${token}'
    location: location
    tags: tags
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: 'app-package'
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: watchdogSettings
  }
  // The host needs its storage roles before its first start.
  dependsOn: [
    storage
  ]
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  params: {
    namePrefix: 'patwatchdog-${token}'
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    functionAppName: functionApp.outputs.name
    timerFunctionName: timerFunctionName
    poisonFunctionName: poisonFunctionName
    alertEmail: alertEmail
  }
}

// azd reads these into the environment; SERVICE_<NAME>_NAME names the deploy target.
// An output named like an input of main.parameters.json feeds the next provision, so only those
// whose value, given again, gives the same value again are (the WATCHDOG_* ones below;
// KEY_VAULT_NAME would turn the created vault into an "existing" one on the next azd up).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output SERVICE_WATCHDOG_NAME string = functionApp.outputs.name
output AZURE_WATCHDOG_IDENTITY_CLIENT_ID string = identity.properties.clientId
output AZURE_WATCHDOG_IDENTITY_PRINCIPAL_ID string = identity.properties.principalId
output AZURE_KEY_VAULT_NAME string = vaultName
output AZURE_CHANNEL_VAULT_NAME string = useChannelVault ? channelVaultName : ''
// Reference mode: the versionless reference to put into the Aggregator token setting.
output AZURE_AGGREGATOR_TOKEN_SECRET_URI string = vaultAccess.outputs.tokenSecretUri
output AZURE_KEY_VAULT_ROTATION_ROLE string = vaultAccess.outputs.watchdogRoleName
output AZURE_KEY_VAULT_STAGING_ROLE string = vaultAccess.outputs.operatorRoleName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
// The app's values of the settings the template derives, under the settings' names, so that
// `azd env get-values` gives `pat-watchdog login`, `doctor` and `status` on a laptop what the app has.
output WATCHDOG_AGGREGATOR_APP string = watchdogSettings.WATCHDOG_AGGREGATOR_APP
output WATCHDOG_STAGED_SECRET string = watchdogSettings.WATCHDOG_STAGED_SECRET
output WATCHDOG_PREVIOUS_SECRET string = watchdogSettings.WATCHDOG_PREVIOUS_SECRET
output WATCHDOG_ARM_ENDPOINT string = armEndpoint
output WATCHDOG_KEY_VAULT_URL string = watchdogSettings.WATCHDOG_KEY_VAULT_URL
output WATCHDOG_ACS_ENDPOINT string = useAcs ? acsAccess.outputs.endpoint : ''
