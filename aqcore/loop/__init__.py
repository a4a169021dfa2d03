"""The governed generation loops: token granularity and unit granularity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .units import UnitLoop, cut_units

if TYPE_CHECKING:
    from .tokens import TokenLoop

__all__ = ["TokenLoop", "UnitLoop", "cut_units"]


def __getattr__(name: str) -> Any:
    # The token loop needs numpy, which aq imports only once a token adapter generates.
    if name == "TokenLoop":
        from .tokens import TokenLoop

        return TokenLoop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
