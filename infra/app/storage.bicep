// The watchdog's own storage account: the Functions host (AzureWebJobsStorage: timer
// schedule and leases, the Flex deployment package), the alert ledger / run history table
// (WATCHDOG_STATE_TABLE) and the optional fan-out queue (WATCHDOG_FANOUT_QUEUE).
// Reached only through the managed identity: shared keys are off, so no connection string
// or account key exists in any setting.

param name string
param location string
param tags object = {}

@description('Principal ID of the watchdog managed identity.')
param principalId string

param deploymentContainerName string
param stateTable string
@description('Fan-out queue name; empty creates no queue.')
param fanoutQueue string = ''
param logAnalyticsId string

// Storage Blob Data Owner
var blobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Storage Table Data Contributor
var tableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
// Storage Queue Data Contributor
var queueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
  // checkov:skip=CKV_AZURE_35:A Flex Consumption app without VNet integration reaches its host storage over the public endpoint from no fixed IP range, so a default-deny firewall locks the host out. Every request still needs an Entra ID token with a data role (shared keys are off). VNet integration with private endpoints is the hardening path (docs/deploy.md).
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: without VNet integration the public endpoint is how the host reaches its storage; access is identity-only.
  // checkov:skip=CKV_AZURE_206:LRS on purpose. The account holds the deployment package (re-published from source), timer leases and the alert ledger; a lost ledger costs at most one duplicate alert (docs/reference.md, "Alerts"). No PAT or secret is stored here.
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTable
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource fanout 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = if (!empty(fanoutQueue)) {
  parent: queueService
  name: empty(fanoutQueue) ? 'unused' : fanoutQueue
}

// Role: Storage Blob Data Owner, on this storage account only.
// Why: the Functions host with an identity-based AzureWebJobsStorage keeps timer schedule
// status and singleton leases in blobs and creates its containers; Flex Consumption pulls
// the deployment package from the app-package container with the same identity. Owner,
// not Contributor, is what the Functions documentation requires for host storage.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, blobDataOwnerRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwnerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Role: Storage Table Data Contributor, on this storage account only.
// Why: the watchdog reads and writes its alert ledger and run history in the state table
// (docs/reference.md, "Alerts"); entity reads and writes need data-plane access, and no table of any other
// account is touched.
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, tableDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Role: Storage Queue Data Contributor, on this storage account only.
// Why: with WATCHDOG_FANOUT_QUEUE set the timer enqueues one message per instance and the
// queue trigger reads and deletes them (docs/reference.md, "Many instances"). Granted even with fan-out off because
// the queue trigger's listener starts whenever function_app.py declares it, and a listener
// that cannot poll fails the host's health; the account holds no other queue.
resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, queueDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Diagnostic logs: every read, write and delete on the three services goes to Log Analytics.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-blob-to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-table-to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-queue-to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
