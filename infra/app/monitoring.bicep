// Log Analytics + Application Insights for the watchdog. Application Insights takes
// telemetry only with Entra ID (local auth off), so the identity below needs its one role.

param logAnalyticsName string
param applicationInsightsName string
param location string
param tags object = {}

@description('Principal ID of the watchdog managed identity.')
param principalId string

@minValue(30)
param retentionInDays int = 30

// Monitoring Metrics Publisher
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // Only Entra ID (RBAC) queries and ingestion, no workspace shared keys.
      disableLocalAuth: true
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // The instrumentation key in the connection string alone cannot ingest: every sender
    // authenticates with Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING in function.bicep).
    DisableLocalAuth: true
  }
}

// Role: Monitoring Metrics Publisher, on this Application Insights component only.
// Why: with local auth disabled, the Functions host sends logs, requests and the
// pat_days_left metric with the managed identity; this is the role Azure Monitor requires
// for Entra ID ingestion. It allows publishing telemetry, not reading it.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisherRoleId)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output logAnalyticsId string = logAnalytics.id
output applicationInsightsId string = applicationInsights.id
output applicationInsightsName string = applicationInsights.name
output connectionString string = applicationInsights.properties.ConnectionString
