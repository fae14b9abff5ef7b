// The watchdog Function App: Linux, Flex Consumption, Python 3.11, running as the
// user-assigned identity for everything (host storage, Application Insights, Key Vault
// references, the watchdog's own Azure calls). No key or connection secret in any setting.

param name string
param planName string
param location string
param tags object = {}

@description('Resource ID of the user-assigned managed identity.')
param identityId string
@description('Client ID of that identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string

param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string

@description('WATCHDOG_* settings, built in main.bicep.')
param appSettings object

// Flex Consumption accepts 40 to 1000 (Microsoft Learn, "Flex Consumption plan hosting":
// "the maximum instance count ... lowest value is 40").
@minValue(40)
@maxValue(1000)
@description('Flex Consumption scale-out limit (40-1000); one daily run needs one instance, fan-out a few more.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Flex Consumption takes the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION must not be set.
var platformSettings = {
  // Identity-based host storage: the account plus the identity, never a key.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  // DefaultAzureCredential in the watchdog picks the user-assigned identity by this.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  // Telemetry is sent with the identity (local auth is off on Application Insights).
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}
var allSettings = union(appSettings, platformSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
  // checkov:skip=CKV_AZURE_225:Zone redundancy is offered for Flex Consumption only in some regions and fails the deployment elsewhere. A once-a-day job gains nothing from it: a missed run raises the 26-hour alert (alerts.bicep) and the next run catches up.
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_78:checkov wants the FTPS state property, which Flex Consumption rejects (Microsoft Learn, Flex Consumption plan deprecations); FTP is off all the same, since basic publishing credentials are disabled for ftp and scm below
  name: name
  location: location
  // azd deploys the `watchdog` service of azure.yaml to the site with this tag.
  tags: union(tags, {
    'azd-service-name': 'watchdog'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in the settings resolve with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    // No ftpsState, alwaysOn, linuxFxVersion or other property of Microsoft's "Flex Consumption
    // plan deprecations" table: ARM rejects a Flex site that sets one. FTP is off through
    // basicPublishingCredentialsPolicies below (tests/infra/infra_policy.py, flex_problems).
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      // Inline rather than a separate config/appsettings resource: checkov reads every
      // Microsoft.Web/sites/config as the web config document.
      appSettings: [for setting in items(allSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  // checkov:skip=CKV_AZURE_222:Deployment (azd deploy, func azure functionapp publish) and the GET /api/status endpoint for dashboards reach the app over its public endpoint; every inbound call needs Entra ID (deployment) or a function key (status), and basic publishing is off. A private endpoint needs a VNet this template does not assume.
  // checkov:skip=CKV_AZURE_17:The only inbound endpoint is GET /api/status behind a function key, read by dashboards and uptime checks that hold no client certificate. Client certificates would protect nothing else: the watchdog's work is a timer.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; an always-ready instance would run around the clock for a job that runs once a day. A missed run raises the 26-hour alert (alerts.bicep).
  // checkov:skip=CKV_AZURE_213:App Service health check pings instances to route HTTP traffic away from bad ones; the watchdog serves no traffic to balance and a Flex app has no instance between runs. Liveness is watched by the failed-run and 26-hour alerts (alerts.bicep).
}

// Basic (user name + password) publishing off for FTP and for the SCM site: deployments
// (azd, func publish) authenticate with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// No diagnostic settings on the site: Microsoft's Flex Consumption page lists them as not supported
// ("Diagnostic settings aren't currently supported", Considerations). The function logs and the
// invocations go to Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING above), whose
// data lives in the Log Analytics workspace of monitoring.bicep (a workspace-based resource).

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
