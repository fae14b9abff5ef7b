// The watchdog's only permission on the Aggregator side, deployed at the Aggregator's
// resource group (which may be in another subscription of the same tenant).
//
// A custom role instead of Contributor / Website Contributor: those also allow deleting
// the app, changing its plan, slots, networking, deployment and identity. The watchdog
// needs exactly the ARM actions below (docs/reference.md and docs/rotation.md), and in
// reference mode one fewer.
//
// Residual power, stated so that a reviewer sees it (docs/reference.md, "If this identity were
// stolen"): in setting mode the role holds config/write, and ARM has no action narrower
// than that for app settings, so it can change every setting and the site's other config
// documents (web config, auth settings, connection strings), WEBSITE_RUN_FROM_PACKAGE
// included, i.e. run code of its choosing as the Aggregator app. Reference mode
// (tokenMode = 'reference') drops config/write: the token then lives in Key Vault and the
// watchdog rotates it by writing the secret and restarting the app. In both modes
// config/list/action reads every setting of the app, not only the token (the watchdog
// must, because PUT config/appsettings replaces the whole dictionary).
//
// Broader option (discovery over a subscription, docs/reference.md, "Many instances"): a role of its
// own at the subscription, never this one widened; see docs/reference.md, "Discovery across a subscription".

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

@allowed([
  'setting'
  'reference'
])
@description('setting: the PAT is the plain value of the token setting, rotated by rewriting the settings. reference: the token setting is a versionless Key Vault reference, rotated by writing the secret and restarting the app; the role then has no config/write.')
param tokenMode string = 'setting'

var referenceMode = tokenMode == 'reference'

// Reference mode: each action is a call the watchdog makes (docs/reference.md, docs/rotation.md).
// ARM names the action of a request after the path's resource types without their names, then
// read / write / delete, or the POST's own .../action (Microsoft's "Azure resource provider
// operations", Microsoft.Web). The sandbox derives them the same way and refuses every call these
// lists do not grant (tests/e2e/test_deployed_rights.py).
var referenceModeActions = [
  // GET the site: confirm the instance exists and read its tags; with the
  // resourceGroup scope, list the sites to discover instances (docs/reference.md, "Many instances").
  'Microsoft.Web/sites/read'
  // GET config/configreferences/appsettings/{name}: how App Service resolved the Key Vault reference
  // in the token setting (status, the swap's verification, the doctor). Types sites/config/appsettings:
  // "Get Web App settings" in the operations list; Microsoft.Web/sites/config/read does not cover it.
  'Microsoft.Web/sites/config/appsettings/read'
  // POST config/appsettings/list: read the token setting (ARM returns setting
  // values only through this list action).
  'Microsoft.Web/sites/config/list/action'
  // POST restart: a versionless Key Vault reference picks up a new secret version
  // only after a restart (docs/rotation.md).
  'Microsoft.Web/sites/restart/action'
]

// Setting mode: the same, plus PUT config/appsettings, the read-merge-replace that swaps
// the token and puts it back on rollback (docs/rotation.md, steps 4 and 5).
var settingModeActions = [
  'Microsoft.Web/sites/read'
  'Microsoft.Web/sites/config/appsettings/read'
  'Microsoft.Web/sites/config/list/action'
  'Microsoft.Web/sites/config/write'
  'Microsoft.Web/sites/restart/action'
]

resource aggregatorSite 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource aggregatorSettingsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  // Deterministic per resource group: redeploying updates the same role.
  name: guid(resourceGroup().id, 'pat-watchdog-aggregator-settings')
  properties: {
    // Role names are unique per tenant: the suffix tells same-named groups of two subscriptions apart.
    roleName: 'pat-watchdog Aggregator settings (${resourceGroup().name}, ${take(uniqueString(resourceGroup().id), 6)})'
    description: referenceMode ? 'Lets pat-watchdog read the settings of the Aggregator Function Apps of this resource group and restart them (the PAT is a Key Vault reference). Nothing else.' : 'Lets pat-watchdog read and rotate the Azure DevOps PAT in the app settings of the Aggregator Function Apps of this resource group. Nothing else.'
    type: 'CustomRole'
    // Assignable here only: it can never be assigned at subscription scope by mistake.
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        // Redeploying with the other tokenMode updates this same role in place, so no
        // assignment of the other mode's action set is left behind.
        actions: referenceMode ? referenceModeActions : settingModeActions
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
// staged replacement by read-merge-replace of the settings (setting mode) or by a restart
// after writing the referenced secret (reference mode); no other resource of the
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
// the settings actions and restart, and only on Microsoft.Web/sites. In reference mode every
// instance of the group must use a versionless Key Vault reference: none can be rotated by
// rewriting its settings.
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
