// The watchdog's only permission on the Aggregator side, deployed at the Aggregator's
// resource group (which may be in another subscription of the same tenant).
//
// A custom role instead of Contributor / Website Contributor: those also allow deleting
// the app, changing its plan, slots, networking, deployment and identity. The watchdog
// needs exactly the five ARM actions below (docs/reference.md and docs/rotation.md).
//
// Residual power, stated so that a reviewer sees it: ARM has no action narrower than
// config/write for app settings, so the role can also change the site's other config
// documents (web config, auth settings, connection strings); and config/list/action reads
// every setting of the app, not only the token (the watchdog must, because PUT
// config/appsettings replaces the whole dictionary).
//
// Broader option (discovery over a subscription, docs/reference.md, "Many instances"): add the subscription to the
// role's assignableScopes and assign it there. Not done here on purpose; see docs/deploy.md,
// "Deploy", for the two commands.

@description('Name of the Aggregator Function App, in this resource group.')
param siteName string

@description('Principal ID of the watchdog managed identity.')
param principalId string

@allowed([
  'site'
  'resourceGroup'
])
@description('site: the role is assigned on the Aggregator app only. resourceGroup: on this resource group, for discovery of every instance in it.')
param accessScope string = 'site'

resource aggregatorSite 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource aggregatorSettingsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  // Deterministic per resource group: redeploying updates the same role.
  name: guid(resourceGroup().id, 'pat-watchdog-aggregator-settings')
  properties: {
    // Role names are unique per tenant: the suffix tells same-named groups of two subscriptions apart.
    roleName: 'pat-watchdog Aggregator settings (${resourceGroup().name}, ${take(uniqueString(resourceGroup().id), 6)})'
    description: 'Lets pat-watchdog read and rotate the Azure DevOps PAT in the app settings of the Aggregator Function Apps of this resource group. Nothing else.'
    type: 'CustomRole'
    // Assignable here only: it can never be assigned at subscription scope by mistake.
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: [
          // GET the site: confirm the instance exists and read its tags; with the
          // resourceGroup scope, list the sites to discover instances (docs/reference.md, "Many instances").
          'Microsoft.Web/sites/read'
          // GET site config documents (the Key Vault reference status of a setting).
          'Microsoft.Web/sites/config/read'
          // POST config/appsettings/list: read the token setting (ARM returns setting
          // values only through this list action).
          'Microsoft.Web/sites/config/list/action'
          // PUT config/appsettings: the read-merge-replace that swaps the token and puts
          // it back on rollback (docs/rotation.md, steps 4 and 5).
          'Microsoft.Web/sites/config/write'
          // POST restart: a versionless Key Vault reference picks up a new secret version
          // only after a restart (docs/rotation.md).
          'Microsoft.Web/sites/restart/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

var roleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aggregatorSettingsRole.name)

// Role: the custom "pat-watchdog Aggregator settings" role above, on the Aggregator
// Function App only (default).
// Why: the watchdog reads the PAT from the app's settings, checks it, and swaps in the
// staged replacement by read-merge-replace of the settings; no other resource of the
// Aggregator's resource group is readable or writable to it.
resource onAggregatorSite 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (accessScope == 'site') {
  name: guid(aggregatorSite.id, principalId, 'pat-watchdog-aggregator-settings')
  scope: aggregatorSite
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'pat-watchdog: read and rotate the Aggregator PAT setting'
  }
}

// Role: the same custom role, on the Aggregator resource group (accessScope =
// 'resourceGroup' only).
// Why: discovery (WATCHDOG_AGGREGATOR_APP = the group's ID) lists the group's sites and
// watches every Aggregator instance in it; the role still grants nothing but sites/read,
// the settings actions and restart, and only on Microsoft.Web/sites.
resource onAggregatorGroup 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (accessScope == 'resourceGroup') {
  name: guid(resourceGroup().id, principalId, 'pat-watchdog-aggregator-settings')
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'pat-watchdog: discover Aggregator instances and rotate their PAT settings'
  }
}

output roleDefinitionId string = roleDefinitionId
