"""The governed generation loops: token granularity and unit granularity."""

from .tokens import TokenLoop
from .units import UnitLoop, cut_units

__all__ = ["TokenLoop", "UnitLoop", "cut_units"]
