"""The log-partition kernel: ggml's vectorised exp-and-sum, from the CPU backend that
llama-cpp-python has already loaded.

Every governed step needs ``log Σ exp(logits)`` over the whole vocabulary (the surprisal of the
chosen token goes into the observation and the lineage leaf). With numpy that is an ``exp`` and
a ``sum``: two code paths that ``llama_decode`` has just evicted from the CPU's caches, about
65 µs per step on SmolLM2's 49,152 logits on 2 cores. ``ggml_vec_soft_max_f32`` writes
``exp(x - shift)`` and returns its sum (in double) in one SIMD pass, with its code small enough to
stay cheap when cold; the same step then costs about 15 µs (``benchmarks/bench_llamacpp.py``).

The function is part of ggml's CPU backend, not of llama.cpp's public API, so it is looked up
by name, checked against numpy on a known vector before it is trusted, and skipped (the loop
falls back to numpy) wherever it is missing or disagrees.
"""

from __future__ import annotations

import ctypes
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ExpSum", "load_exp_sum"]

_SYMBOL = "ggml_vec_soft_max_f32"
_LIBRARY_NAMES = {"win32": ("ggml-cpu.dll",), "darwin": ("libggml-cpu.dylib",)}.get(
    sys.platform, ("libggml-cpu.so",)
)


class ExpSum:
    """``exp_sum(x, out, shift)``: writes ``exp(x - shift)`` into ``out`` and returns its sum.

    ``x`` and ``out`` are float32, one-dimensional, C-contiguous and of one size; their
    addresses are looked up once per array object (the loop passes the same views every step).

    :raises ValueError: an array is not float32, contiguous and one-dimensional, or the two
        sizes differ.
    """

    __slots__ = ("_fn", "_n", "_out", "_out_address", "_x", "_x_address")

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        self._n = 0
        self._x: np.ndarray | None = None
        self._x_address = 0
        self._out: np.ndarray | None = None
        self._out_address = 0

    def __call__(self, x: np.ndarray, out: np.ndarray, shift: float) -> float:
        if x is not self._x or out is not self._out:
            self._bind(x, out)
        result: float = self._fn(self._n, self._out_address, self._x_address, shift)  # c_double: a float
        return result

    def _bind(self, x: np.ndarray, out: np.ndarray) -> None:
        for name, array in (("x", x), ("out", out)):
            if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 1 \
                    or not array.flags.c_contiguous:
                raise ValueError(f"exp_sum: {name} must be a 1-D C-contiguous float32 array")
        if not out.flags.writeable:
            raise ValueError("exp_sum: out must be writeable")
        if x.shape != out.shape:
            raise ValueError(f"exp_sum: x has {x.shape[0]} values but out has {out.shape[0]}")
        # The arrays are held, so the memory behind a cached address stays alive.
        self._x, self._x_address = x, x.__array_interface__["data"][0]
        self._out, self._out_address = out, out.__array_interface__["data"][0]
        self._n = x.shape[0]


def load_exp_sum(llama_cpp: Any) -> ExpSum | None:
    """The kernel from the ggml CPU library beside ``llama_cpp``'s ``libllama``, or None when
    that library or its symbol is missing (another build layout) or it fails the self-check."""
    lib_path = getattr(getattr(getattr(llama_cpp, "llama_cpp", None), "_lib", None), "_name", None)
    if not lib_path:
        return None
    for name in _LIBRARY_NAMES:
        candidate = Path(lib_path).parent / name
        if candidate.exists():
            break
    else:
        return None
    try:
        fn = getattr(ctypes.CDLL(str(candidate)), _SYMBOL)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float]
    fn.restype = ctypes.c_double
    kernel = ExpSum(fn)
    return kernel if _agrees_with_numpy(kernel) else None


def _agrees_with_numpy(kernel: ExpSum) -> bool:
    # 16-wide SIMD body plus a scalar tail, values across exp's useful range
    x = np.linspace(-30.0, 5.0, 16 * 5 + 7, dtype=np.float32)
    out = np.zeros_like(x)
    shift = 5.0
    total = kernel(x, out, shift)
    expected = np.exp(x.astype(np.float64) - shift)
    return (
        math.isclose(total, float(expected.sum()), rel_tol=1e-5)
        and bool(np.allclose(out, expected, rtol=1e-5, atol=1e-30))
    )
