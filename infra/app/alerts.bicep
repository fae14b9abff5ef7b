// Who watches the watchdog: Azure Monitor alerts on its Application Insights telemetry,
// sent to an action group that emails a person. Independent of the watchdog's own alert
// channels, so a broken Teams webhook or SMTP setting cannot hide a failing watchdog.

param namePrefix string
param location string
param tags object = {}
param applicationInsightsId string
param functionAppName string
param timerFunctionName string

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

// A failed run: any failed invocation of the watchdog app (the timer's run raises after
// finishing its other actions when one failed, README, "Commands and exit codes"; also a failed fan-out item or
// status request). Checked every 15 minutes.
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
          query: 'requests | where cloud_RoleName =~ "${functionAppName}" and success == false'
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
// A fresh deployment has no run yet: trigger the first one right away (README, Deploy),
// or this alert fires once and resolves itself at the first success.
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
    // The query looks back 26 h itself; the window only has to cover that.
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
