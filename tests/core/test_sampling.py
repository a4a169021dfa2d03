"""Seeded sampling (aqcore/sampling.py): greedy, temperature, top-k, top-p, bans and masks,
the log-partition and surprisal, and that the adapter's logits view is never written to."""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aqcore.sampling as sampling
from aqcore.sampling import Distribution, Sampler, SamplingParams

LOGITS5 = np.array([2.0, 1.0, 0.5, -0.5, -2.0], dtype=np.float32)
# chi-square critical value for 4 degrees of freedom at p = 0.001: a correct sampler fails this
# with probability 1/1000, and with a fixed seed the outcome is deterministic.
CHI2_4DF_P001 = 18.467


def softmax64(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def logsumexp64(values: np.ndarray) -> float:
    v = values.astype(np.float64)
    peak = v.max()
    return float(peak + np.log(np.exp(v - peak).sum()))


def draws(sampler: Sampler, dist: Distribution, n: int, banned: Any = (), allowed: Any = None) -> list[int | None]:
    return [sampler.draw(dist, set(banned), allowed) for _ in range(n)]


def chi_square(counts: Counter, expected_p: np.ndarray, n: int) -> float:
    return float(sum((counts.get(i, 0) - n * p) ** 2 / (n * p) for i, p in enumerate(expected_p)))


# -- greedy --------------------------------------------------------------------------------

def test_greedy_picks_the_argmax():
    sampler = Sampler(SamplingParams(temperature=0.0))
    logits = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    assert sampler.draw(Distribution(logits, 0.0), set(), None) == 1


def test_greedy_respects_bans_and_the_allowed_mask():
    sampler = Sampler(SamplingParams(temperature=0.0))
    logits = np.array([0.1, 3.0, 2.9, -1.0, 2.0], dtype=np.float32)
    dist = Distribution(logits, 0.0)
    assert sampler.draw(dist, {1}, None) == 2
    assert sampler.draw(dist, {1, 2}, None) == 4
    allowed = np.array([True, False, False, True, False])
    assert sampler.draw(dist, set(), allowed) == 0
    assert sampler.draw(dist, {0}, allowed) == 3
    # neither the bans nor the mask are written into the scaled logits
    np.testing.assert_array_equal(dist.scaled, logits)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_everything_masked_gives_none(temperature):
    sampler = Sampler(SamplingParams(temperature=temperature, seed=1))
    logits = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    dist = Distribution(logits, temperature, np.empty(3, dtype=np.float32))
    assert sampler.draw(dist, set(), np.zeros(3, dtype=bool)) is None
    assert sampler.draw(dist, {0, 1, 2}, None) is None
    assert sampler.draw(dist, {2}, np.array([False, False, True])) is None


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=1.0, top_k=2, seed=3),
    SamplingParams(temperature=1.0, top_p=0.5, seed=3),
    SamplingParams(temperature=1.0, top_k=2, top_p=0.5, seed=3),
])
def test_everything_masked_gives_none_with_top_k_and_top_p(params):
    sampler = Sampler(params)
    dist = Distribution(LOGITS5.copy(), 1.0)
    assert sampler.draw(dist, set(), np.zeros(5, dtype=bool)) is None
    assert sampler.draw(dist, set(range(5)), None) is None


# -- reproducibility ------------------------------------------------------------------------

def test_same_seed_same_draws_different_seed_different_draws():
    dist = Distribution(LOGITS5.copy(), 1.0)
    first = draws(Sampler(SamplingParams(temperature=1.0, seed=42)), dist, 200)
    again = draws(Sampler(SamplingParams(temperature=1.0, seed=42)), dist, 200)
    other = draws(Sampler(SamplingParams(temperature=1.0, seed=43)), dist, 200)
    assert first == again
    assert first != other
    assert len(set(first)) > 1  # really random, not a constant


def test_bans_do_not_shift_the_random_stream():
    """One uniform number per draw: a ban at one step changes that step only."""
    dist = Distribution(LOGITS5.copy(), 1.0)
    plain = Sampler(SamplingParams(temperature=1.0, seed=5))
    banned = Sampler(SamplingParams(temperature=1.0, seed=5))
    a = [plain.draw(dist, set(), None) for _ in range(50)]
    b = [banned.draw(dist, {4} if i == 0 else set(), None) for i in range(50)]
    assert a[1:] == b[1:]


# -- temperature ----------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_frequencies_match_the_softmax(temperature):
    n = 20_000
    sampler = Sampler(SamplingParams(temperature=temperature, seed=20240601))
    dist = Distribution(LOGITS5.copy(), temperature, np.empty(5, dtype=np.float32))
    counts = Counter(draws(sampler, dist, n))
    expected = softmax64(LOGITS5, temperature)
    assert chi_square(counts, expected, n) < CHI2_4DF_P001, (counts, expected)


def test_frequencies_do_not_match_a_different_temperature():
    """The chi-square check above has power: draws at T=2 are far from softmax at T=1."""
    n = 20_000
    sampler = Sampler(SamplingParams(temperature=2.0, seed=20240601))
    counts = Counter(draws(sampler, Distribution(LOGITS5.copy(), 2.0), n))
    assert chi_square(counts, softmax64(LOGITS5, 1.0), n) > 10 * CHI2_4DF_P001


def test_banned_and_masked_tokens_are_renormalised_away():
    n = 20_000
    sampler = Sampler(SamplingParams(temperature=1.0, seed=11))
    dist = Distribution(LOGITS5.copy(), 1.0)
    allowed = np.array([True, True, True, True, False])
    counts = Counter(draws(sampler, dist, n, banned={0}, allowed=allowed))
    assert set(counts) == {1, 2, 3}
    expected = softmax64(LOGITS5[1:4])
    stat = sum((counts[i + 1] - n * p) ** 2 / (n * p) for i, p in enumerate(expected))
    assert stat < 13.816  # chi-square, 2 degrees of freedom, p = 0.001


def test_allowed_token_far_below_the_peak_is_still_drawn_greedy():
    """A grammar mask may allow only tokens the model finds very unlikely: greedy draws them."""
    logits = np.array([0.0, -150.0, -200.0], dtype=np.float32)
    sampler = Sampler(SamplingParams(temperature=0.0))
    assert sampler.draw(Distribution(logits, 0.0), set(), np.array([False, True, True])) == 1


@pytest.mark.parametrize("values, temperature", [
    ([0.0, -150.0, -151.0], 1.0),
    ([20.0, -15.0, -16.0], 0.3),  # at T=0.3 a logit gap of 35 (ordinary for an LLM) is 117 nats
])
def test_allowed_token_far_below_the_peak_is_still_drawn_sampled(values, temperature):
    logits = np.array(values, dtype=np.float32)
    sampler = Sampler(SamplingParams(temperature=temperature, seed=2))
    dist = Distribution(logits, temperature, np.empty(3, dtype=np.float32))
    got = [sampler.draw(dist, set(), np.array([False, True, True])) for _ in range(200)]
    assert set(got) <= {1, 2} and None not in got
    assert sampler.draw(dist, {0}, None) in (1, 2)


# -- top-k / top-p --------------------------------------------------------------------------

def test_top_k_restricts_to_the_k_best():
    n = 20_000
    sampler = Sampler(SamplingParams(temperature=1.0, top_k=2, seed=9))
    counts = Counter(draws(sampler, Distribution(LOGITS5.copy(), 1.0), n))
    assert set(counts) == {0, 1}
    p = softmax64(LOGITS5[:2])
    stat = sum((counts[i] - n * q) ** 2 / (n * q) for i, q in enumerate(p))
    assert stat < 10.828  # 1 degree of freedom, p = 0.001


def test_top_k_applies_after_bans():
    sampler = Sampler(SamplingParams(temperature=1.0, top_k=2, seed=9))
    got = set(draws(sampler, Distribution(LOGITS5.copy(), 1.0), 2000, banned={0}))
    assert got == {1, 2}


def test_top_k_larger_than_the_vocabulary_is_plain_sampling():
    sampler = Sampler(SamplingParams(temperature=1.0, top_k=50, seed=9))
    got = set(draws(sampler, Distribution(LOGITS5.copy(), 1.0), 5000))
    assert got == {0, 1, 2, 3, 4}


def test_top_p_restricts_to_the_smallest_set_reaching_the_mass():
    probs = np.array([0.05, 0.5, 0.15, 0.3], dtype=np.float64)
    logits = np.log(probs).astype(np.float32)
    dist = Distribution(logits, 1.0)
    # 0.5 < 0.75 <= 0.5 + 0.3: the two best tokens
    got = Counter(draws(Sampler(SamplingParams(temperature=1.0, top_p=0.75, seed=1)), dist, 10_000))
    assert set(got) == {1, 3}
    assert got[1] / 10_000 == pytest.approx(0.5 / 0.8, abs=0.03)
    # 0.8 < 0.85: needs the third one too
    got = Counter(draws(Sampler(SamplingParams(temperature=1.0, top_p=0.85, seed=1)), dist, 10_000))
    assert set(got) == {1, 2, 3}
    # a tiny top_p keeps only the best token
    got = Counter(draws(Sampler(SamplingParams(temperature=1.0, top_p=0.01, seed=1)), dist, 1000))
    assert set(got) == {1}


def test_top_p_is_measured_within_the_top_k():
    probs = np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float64)
    dist = Distribution(np.log(probs).astype(np.float32), 1.0)
    # within the top 2 (0.4, 0.3 -> renormalised 0.571, 0.429), top_p 0.5 keeps only token 0
    got = set(draws(Sampler(SamplingParams(temperature=1.0, top_k=2, top_p=0.5, seed=4)), dist, 2000))
    assert got == {0}


def reference_nucleus(p: np.ndarray, top_p: float) -> set[int]:
    order = np.argsort(-p.astype(np.float64), kind="stable")
    mass = np.cumsum(p[order].astype(np.float64))
    target = top_p * p.astype(np.float64).sum()
    n = int(np.argmax(mass >= target)) + 1
    return set(order[:n].tolist())


class _ArgsortSpy:
    """Stands in for numpy inside aqcore.sampling and records the size of each argsort."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def argsort(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        self.sizes.append(int(np.asarray(a).size))
        return np.argsort(a, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


@pytest.mark.parametrize("shape", ["peaked", "flat"])
def test_top_p_on_a_large_vocabulary_window_and_fallback(monkeypatch, shape):
    vocab = 5000
    assert vocab > sampling._TOP_P_WINDOW
    rng = np.random.default_rng(123)
    if shape == "peaked":
        # a few dozen tokens hold nearly all the mass: the best 1024 reach top_p
        logits = rng.normal(0.0, 1.0, vocab).astype(np.float32)
        logits[rng.choice(vocab, 40, replace=False)] += 12.0
    else:
        # nearly uniform: the best 1024 hold ~25% of the mass, so the full sort is needed
        logits = rng.normal(0.0, 0.1, vocab).astype(np.float32)
    spy = _ArgsortSpy()
    monkeypatch.setattr(sampling, "np", spy)
    top_p = 0.9
    sampler = Sampler(SamplingParams(temperature=1.0, top_p=top_p, seed=8))
    dist = Distribution(logits, 1.0)
    p = dist.unnormalised()
    expected = reference_nucleus(p, top_p)
    got = set(sampler._nucleus(p, None).tolist())
    assert got == expected
    if shape == "peaked":
        assert spy.sizes == [sampling._TOP_P_WINDOW]
        assert len(expected) < sampling._TOP_P_WINDOW
    else:
        assert spy.sizes == [vocab]
        assert len(expected) > sampling._TOP_P_WINDOW
    drawn = set(draws(sampler, dist, 500))
    assert drawn <= expected


# -- the distribution -----------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7, 1.8])
def test_log_z_and_surprisal_match_a_float64_reference(temperature):
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 4.0, 49_152).astype(np.float32)
    effective = 1.0 if temperature == 0.0 else temperature
    scaled64 = logits.astype(np.float64) / effective
    dist = Distribution(logits.copy(), temperature, np.empty_like(logits))
    assert dist.log_z == pytest.approx(logsumexp64(scaled64), rel=1e-6, abs=1e-5)
    log_softmax = scaled64 - logsumexp64(scaled64)
    for token in (0, int(logits.argmax()), int(logits.argmin()), 12345):
        assert dist.surprisal(token) == pytest.approx(-log_softmax[token], rel=1e-5, abs=1e-4)
    assert dist.surprisal(int(logits.argmax())) >= 0


def test_surprisal_of_a_certain_token_is_zero_and_uniform_is_log_n():
    certain = Distribution(np.array([0.0, -1e4, -1e4], dtype=np.float32), 1.0)
    assert certain.surprisal(0) == pytest.approx(0.0, abs=1e-6)
    uniform = Distribution(np.zeros(8, dtype=np.float32), 1.0)
    for token in range(8):
        assert uniform.surprisal(token) == pytest.approx(np.log(8), rel=1e-6)


def test_large_logits_do_not_overflow():
    dist = Distribution(np.array([1000.0, 999.0, -1000.0], dtype=np.float32), 1.0)
    assert np.isfinite(dist.log_z)
    assert dist.surprisal(0) == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-5)


def test_temperature_scaling_writes_into_the_scratch_buffer_not_the_adapters_view():
    logits = np.array([3.0, 1.0, -2.0, 0.5], dtype=np.float32)
    original = logits.copy()
    scratch = np.full(4, np.nan, dtype=np.float32)
    dist = Distribution(logits, 0.5, scratch)
    np.testing.assert_array_equal(logits, original)
    assert dist.scaled is scratch
    np.testing.assert_allclose(scratch, original / 0.5)
    # drawing (with bans and masks) does not touch the adapter's view either
    sampler = Sampler(SamplingParams(temperature=0.5, seed=1, top_k=3, top_p=0.9))
    for _ in range(20):
        sampler.draw(dist, {0}, np.array([True, True, False, True]))
    np.testing.assert_array_equal(logits, original)


def test_temperature_scaling_without_a_scratch_buffer_copies():
    logits = np.array([3.0, 1.0, -2.0], dtype=np.float32)
    original = logits.copy()
    dist = Distribution(logits, 2.0)
    np.testing.assert_array_equal(logits, original)
    assert not np.shares_memory(dist.scaled, logits)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_no_copy_when_no_scaling_is_needed(temperature):
    logits = np.array([3.0, 1.0, -2.0], dtype=np.float32)
    dist = Distribution(logits, temperature, np.empty(3, dtype=np.float32))
    assert dist.scaled is logits


def test_greedy_with_bans_leaves_the_logits_alone():
    logits = np.array([3.0, 1.0, -2.0], dtype=np.float32)
    original = logits.copy()
    Sampler(SamplingParams()).draw(Distribution(logits, 0.0), {0, 1}, None)
    np.testing.assert_array_equal(logits, original)


# -- parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    ({"temperature": -0.1}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_p": -0.2}, "top_p"),
    ({"top_k": -1}, "top_k"),
])
def test_sampling_params_reject_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)


def test_sampling_params_accept_the_edges():
    SamplingParams(temperature=0.0, top_p=1.0, top_k=0)
    SamplingParams(temperature=5.0, top_p=1e-9, top_k=1)


@pytest.mark.parametrize("offset", [-200.0, -80.0, 0.0, 60.0, 75.0, 300.0])
def test_log_partition_is_exact_whatever_the_logit_range(offset):
    """The unshifted fast path and the shifted fallback agree with a float64 reference."""
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal(4096) * 4 + offset).astype(np.float32)
    reference = float(np.logaddexp.reduce(logits.astype(np.float64)))
    dist = Distribution(logits.copy(), 1.0, None, np.empty_like(logits))
    assert dist.log_z == pytest.approx(reference, abs=1e-4)
    assert dist.best == int(np.argmax(logits))
    assert dist.surprisal(dist.best) == pytest.approx(reference - float(logits.max()), abs=1e-4)


# -- the native log-partition kernel (aqcore/_native.c) -------------------------------------------

native = pytest.mark.skipif(not sampling.NATIVE, reason="aqcore._native is not built (no C compiler)")


def test_the_native_kernel_is_built_where_required():
    # tox sets AQ_REQUIRE_NATIVE: there the loop must not quietly fall back to numpy
    if os.environ.get("AQ_REQUIRE_NATIVE"):
        assert sampling.NATIVE, "aqcore._native was not built"


@native
@pytest.mark.parametrize("size", [1, 15, 16, 17, 1023, 1024, 1025, 4096 + 3, 49152])
def test_native_exp_sum_counts_every_value_once(size):
    from aqcore._native import exp_sum

    rng = np.random.default_rng(size)
    x = (rng.normal(size=size) * 5).astype(np.float32)
    peak = float(x.max())
    reference = float(np.exp(x.astype(np.float64) - peak).sum())
    assert exp_sum(x, peak) == pytest.approx(reference, rel=1e-6)


@native
@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(-200, 200, width=32)))
def test_native_exp_sum_matches_float64(x):
    from aqcore._native import exp_sum

    peak = float(x.max())
    reference = float(np.exp(x.astype(np.float64) - peak).sum())
    assert exp_sum(x, peak) == pytest.approx(reference, rel=1e-6)


@native
def test_native_exp_sum_special_values():
    from aqcore._native import exp_sum

    x = np.array([0.0, -np.inf, -1000.0, -np.inf], dtype=np.float32)
    assert exp_sum(x, 0.0) == pytest.approx(1.0, rel=1e-6)  # -inf and far-below terms add nothing visible
    assert math.isnan(exp_sum(np.array([0.0, np.nan], dtype=np.float32), 0.0))
    # a ctypes float array (what llama.cpp's logits view exposes) is accepted like numpy's
    import ctypes

    buffer = (ctypes.c_float * 3)(0.0, -1.0, -2.0)
    assert exp_sum(buffer, 0.0) == pytest.approx(1 + math.exp(-1) + math.exp(-2), rel=1e-6)


@native
@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (np.zeros(4, dtype=np.float64), ValueError, "float32 buffer .got format d"),
        (np.zeros((2, 2), dtype=np.float32), ValueError, "2 dimension"),
        (np.zeros(8, dtype=np.float32)[::2], ValueError, "not C-contiguous"),
        ([0.0, 1.0], TypeError, "bytes-like object is required"),
    ],
)
def test_native_exp_sum_refuses_what_is_not_a_float32_vector(x, error, match):
    from aqcore._native import exp_sum

    with pytest.raises(error, match=match):
        exp_sum(x, 0.0)
    with pytest.raises(TypeError, match="takes 2 arguments"):
        exp_sum(np.zeros(2, dtype=np.float32))  # type: ignore[call-arg]


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0, 1.6])
@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_native_and_numpy_distributions_agree(monkeypatch, temperature, scale):
    rng = np.random.default_rng(11)
    logits = (rng.normal(size=4099) * 6 + scale * 3).astype(np.float32)
    size = logits.size

    def make() -> Distribution:
        return Distribution(logits, temperature, np.empty(size, np.float32), np.empty(size, np.float32))

    first = make()
    monkeypatch.setattr(sampling, "_native_exp_sum", None)
    plain = make()
    assert first.best == plain.best
    assert first.log_z == pytest.approx(plain.log_z, rel=1e-6, abs=1e-6)
    for token in (0, 17, first.best):
        assert first.surprisal(token) == pytest.approx(plain.surprisal(token), rel=1e-5, abs=1e-5)
    # the sampler's weights (computed lazily on the native path) are the same distribution
    ratio = first.unnormalised().astype(np.float64) / plain.unnormalised()
    assert np.allclose(ratio, ratio[first.best], rtol=1e-5)


def test_a_float64_or_strided_array_still_gets_a_distribution():
    # the native kernel takes contiguous float32 only; anything else goes through numpy
    logits = np.array([0.5, 2.0, -1.0, 0.0], dtype=np.float64)
    for array in (logits, logits.astype(np.float32).repeat(2)[::2]):
        dist = Distribution(array, 0.0)
        assert dist.best == 1
        assert dist.log_z == pytest.approx(logsumexp64(np.asarray(array)), rel=1e-6)
