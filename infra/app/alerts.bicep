// Who watches the watchdog: Azure Monitor alerts on its Application Insights telemetry,
// sent to an action group that emails a person. Independent of the watchdog's own alert
// channels, so a broken Teams webhook or SMTP setting cannot hide a failing watchdog.

param namePrefix string
param location string
param tags object = {}
param applicationInsightsId string
param functionAppName string
param timerFunctionName string
param poisonFunctionName string

@description('Who gets the Azure Monitor alerts.')
param alertEmail string

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'patwatchdog'
    enabled: true
    emailReceivers: [
      {
        name: 'watchdog-owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// A failed run: a failed invocation of the timer (its run raises after finishing every other
// action when one failed, docs/reference.md "Commands and exit codes"), or a fan-out item that
// reached the poison queue (every attempt failed). Not counted: a fan-out attempt the host
// retries (each dequeue attempt is its own invocation; a transient failure heals on the next),
// and GET /api/status answers (a dashboard's 404 is not a failed run).
// The `requests` table comes from the Host.Results log category, kept at Information in host.json.
// Checked every 15 minutes.
resource failedRun 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failed-run'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'pat-watchdog: a run failed (${functionAppName})'
    description: 'A pat-watchdog invocation failed: an alert was undeliverable, a rotation failed or was rolled back, or the run crashed. See the invocation in Application Insights.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | where cloud_RoleName =~ "${functionAppName}" | where (operation_Name =~ "${timerFunctionName}" and success == false) or operation_Name =~ "${poisonFunctionName}"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// No successful run in 26 hours: the daily timer missed a run (host down, schedule or
// deployment broken, identity lost its storage roles) or every run failed. 26 h leaves two
// hours of slack on the default daily schedule. Checked hourly.
// A fresh deployment has no run yet: trigger the first one right away (docs/deploy.md),
// or this alert fires once and resolves itself at the first success. The window is 2 days
// (Azure Monitor accepts 5 min to 6 h, 1 day or 2 days, not 26 h); the query looks back 26 h.
resource noSuccessfulRun 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-no-successful-run'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'pat-watchdog: no successful run in 26 hours (${functionAppName})'
    description: 'The pat-watchdog timer has not completed successfully for 26 hours: nobody is watching the Aggregator PAT. Check the Function App, its schedule and its identity.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    criteria: {
      allOf: [
        {
          query: 'requests | where timestamp > ago(26h) | where cloud_RoleName =~ "${functionAppName}" and operation_Name =~ "${timerFunctionName}" and success == true'
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Resolves by itself once a run succeeds again.
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
