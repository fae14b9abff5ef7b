"""pat-watchdog: watches, alerts on and safely rotates the Azure DevOps PAT of Aggregator."""

__version__ = "0.1.0"
