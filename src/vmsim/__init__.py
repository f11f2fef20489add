"""vmsim: the Linux virtual-memory subsystem in Python, checked against the real kernel."""

from vmsim.machine import Machine

__all__ = ["Machine"]
__version__ = "0.1.0"
