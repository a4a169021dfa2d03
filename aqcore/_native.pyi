"""Types of aqcore/_native.c (an optional C extension)."""

from typing import Any

import numpy as np
from typing_extensions import Buffer

def exp_sum(x: np.ndarray[Any, Any] | Buffer, shift: float, /) -> float:
    """The sum of exp(v - shift) over a one-dimensional C-contiguous float32 buffer."""
