"""Local HTTPS stand-ins for Azure (ARM, Key Vault, Azure DevOps, Teams, ACS, SMTP)."""

from .faults import Fault, Recorded, Step
from .server import Sandbox

__all__ = ["Fault", "Recorded", "Sandbox", "Step"]
