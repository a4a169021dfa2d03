"""The log-partition kernel taken from ggml's CPU backend (aq_llamacpp/kernels.py)."""

from __future__ import annotations

import math
import types
from typing import Any

import numpy as np
import pytest
from aq_llamacpp.kernels import load_exp_sum

pytestmark = pytest.mark.smollm2


def _reference(x: np.ndarray, shift: float) -> tuple[float, np.ndarray]:
    terms = np.exp(x.astype(np.float64) - shift)
    return float(terms.sum()), terms


def test_the_pinned_llama_cpp_python_provides_the_kernel(smollm2: Any) -> None:
    # the adapter pins llama-cpp-python; its CPU backend exports the function, so the loop
    # never silently falls back to numpy in the supported build
    assert smollm2.exp_sum is not None


def test_the_kernel_equals_float64_numpy_on_real_logits(smollm2: Any) -> None:
    from aqcore.models import Message

    smollm2.begin([Message(role="user", content="Name three fruits.")])
    logits = smollm2.logits()
    out = np.empty_like(logits)
    peak = float(logits.max())
    total, terms = _reference(logits, peak)
    assert smollm2.exp_sum(logits, out, peak) == pytest.approx(total, rel=1e-6)
    np.testing.assert_allclose(out, terms, rtol=2e-6, atol=1e-30)
    # the logits view itself is only read
    assert float(logits.max()) == peak


@pytest.mark.parametrize("size", [1, 15, 16, 17, 1000])
def test_every_length_is_summed_whole(smollm2: Any, size: int) -> None:
    # 16-wide SIMD body plus a scalar tail: no element dropped or counted twice
    x = np.linspace(-8.0, 2.0, size, dtype=np.float32)
    out = np.full(size, -1.0, dtype=np.float32)
    total, terms = _reference(x, 2.0)
    assert smollm2.exp_sum(x, out, 2.0) == pytest.approx(total, rel=1e-6)
    np.testing.assert_allclose(out, terms, rtol=2e-6)


def test_new_arrays_are_bound_again(smollm2: Any) -> None:
    # the kernel caches addresses per array object; a different array must be read, not the old one
    a = np.zeros(64, dtype=np.float32)
    b = np.full(64, math.log(2.0), dtype=np.float32)
    out = np.empty(64, dtype=np.float32)
    assert smollm2.exp_sum(a, out, 0.0) == pytest.approx(64.0)
    assert smollm2.exp_sum(b, out, 0.0) == pytest.approx(128.0, rel=1e-6)
    other_out = np.empty(64, dtype=np.float32)
    smollm2.exp_sum(a, other_out, 0.0)
    np.testing.assert_allclose(other_out, 1.0)


@pytest.mark.parametrize(
    ("x", "out", "match"),
    [
        (np.zeros(8, dtype=np.float64), np.zeros(8, dtype=np.float32), "x must be a 1-D C-contiguous float32"),
        (np.zeros(8, dtype=np.float32), np.zeros(8, dtype=np.float64), "out must be a 1-D C-contiguous float32"),
        (np.zeros(16, dtype=np.float32)[::2], np.zeros(8, dtype=np.float32), "x must be"),
        (np.zeros((2, 4), dtype=np.float32), np.zeros(8, dtype=np.float32), "x must be"),
        (np.zeros(8, dtype=np.float32), np.zeros(9, dtype=np.float32), "x has 8 values but out has 9"),
        ([0.0] * 8, np.zeros(8, dtype=np.float32), "x must be"),
    ],
)
def test_bad_arrays_are_value_errors_before_any_native_call(smollm2: Any, x: Any, out: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        smollm2.exp_sum(x, out, 0.0)


def test_a_read_only_out_is_refused(smollm2: Any) -> None:
    out = np.zeros(8, dtype=np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        smollm2.exp_sum(np.zeros(8, dtype=np.float32), out, 0.0)


def test_a_build_without_the_library_or_symbol_gives_none(tmp_path: Any) -> None:
    # another build layout: no ggml CPU library beside libllama, or one without the function
    fake_lib = tmp_path / "libllama.so"
    fake = types.SimpleNamespace(llama_cpp=types.SimpleNamespace(_lib=types.SimpleNamespace(_name=str(fake_lib))))
    assert load_exp_sum(fake) is None
    assert load_exp_sum(types.SimpleNamespace()) is None


def test_a_kernel_that_disagrees_with_numpy_is_not_used(monkeypatch: pytest.MonkeyPatch, smollm2: Any) -> None:
    import aq_llamacpp.kernels as kernels
    import llama_cpp

    monkeypatch.setattr(kernels, "_SYMBOL", "ggml_vec_cvar_f32")  # same arity, another function
    assert kernels.load_exp_sum(llama_cpp) is None
