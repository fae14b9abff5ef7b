"""Local HTTPS stand-ins for Azure (ARM, Key Vault, Azure DevOps, Teams, ACS, SMTP)."""

from .faults import Fault, Recorded
from .server import Sandbox

__all__ = ["Fault", "Recorded", "Sandbox"]
