// Email through Azure Communication Services with the managed identity (optional; used
// when the acsResourceId parameter is set). Deployed at the ACS resource's resource group.

@description('Name of the existing Communication Services resource, in this resource group.')
param communicationServiceName string

@description('Principal ID of the watchdog managed identity.')
param principalId string

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' existing = {
  name: communicationServiceName
}

// The two actions Microsoft's sample for sending email with a managed identity names as the
// minimum on the Communication Services resource (Azure-Samples/communication-services-dotnet-quickstarts,
// SendEmailAdvanced/SendEmailWithManagedIdentity: "a custom role with both ...CommunicationServices/Read
// and ...CommunicationServices/Write"), instead of the built-in "Communication and Email Service
// Owner". Microsoft.Communication/EmailServices/write is for SMTP relay only (the ACS quickstart
// "Use a custom role to limit permissions granted to the Microsoft Entra application", SMTP
// authentication): the watchdog sends through the REST API, never SMTP relay.
resource emailSenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'pat-watchdog-acs-email-sender')
  properties: {
    roleName: 'pat-watchdog ACS email sender (${resourceGroup().name}, ${take(uniqueString(resourceGroup().id), 6)})'
    description: 'Lets pat-watchdog send alert email through Azure Communication Services with its managed identity.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Communication/CommunicationServices/Read'
          'Microsoft.Communication/CommunicationServices/Write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

// Role: the custom "pat-watchdog ACS email sender" role above, on this Communication
// Services resource only.
// Why: EmailClient(endpoint, credential).begin_send() authenticates with the managed
// identity; ACS authorizes the send through these actions. Nothing else in the resource
// group is reachable through it.
resource emailSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communicationService.id, principalId, 'pat-watchdog-acs-email-sender')
  scope: communicationService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', emailSenderRole.name)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = 'https://${communicationService.properties.hostName}'
