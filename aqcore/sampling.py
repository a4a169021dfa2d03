"""Seeded sampling over a logits view: greedy, temperature, top-k, top-p, with bans and an
allowed-mask. Works on the adapter's buffer without copying it on the common path."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from .params import SamplingParams

__all__ = ["NATIVE", "Distribution", "Sampler", "SamplingParams", "threshold_mask"]

# top-p first looks at this many best candidates before it falls back to a full sort.
_TOP_P_WINDOW = 1024
# Without a shift, exp(x) in float32 stays finite below about 88.7 (margin kept for the sum over
# the vocabulary); above -70 the largest terms are far from subnormal, so the sum is exact enough.
_EXP_SAFE = 70.0

try:
    from ._native import exp_sum as _native_exp_sum
except ImportError:  # aqcore was installed without a C compiler
    _native_exp_sum = None  # type: ignore[assignment]

NATIVE = _native_exp_sum is not None
"""Whether the log-partition runs in aqcore's C kernel (else numpy)."""


class Distribution:
    """One step's distribution: the temperature-scaled logits (in the loop's scratch buffer; the
    adapter's view is never written) and their log-partition.

    Right after a decode the vocabulary is cold in cache and every pass over it costs several
    times its warm price, so this takes as few as it can: the argmax (which greedy decoding
    reuses) and one native pass for the log-partition (:mod:`aqcore._native`, which reads and
    writes nothing else). The sampler's unnormalised probabilities are computed only when a
    draw needs them. Without the native module numpy does the same in an exp and a sum."""

    __slots__ = ("_probs", "_work", "best", "log_z", "peak", "scaled")

    def __init__(
        self,
        logits: np.ndarray,
        temperature: float,
        scratch: np.ndarray | None = None,
        work: np.ndarray | None = None,
    ) -> None:
        if temperature > 0 and temperature != 1.0:
            # scaled into a buffer the loop owns: the adapter's view may be read again
            logits = np.multiply(logits, np.float32(1.0 / temperature), out=scratch)
        self.scaled = logits
        self._work = work
        self._probs: np.ndarray | None = None
        self.best = int(logits.argmax())
        self.peak = float(logits[self.best])
        if _native_exp_sum is not None and math.isfinite(self.peak):
            try:
                # at least 1: the peak's own term is exp(0)
                self.log_z = self.peak + math.log(_native_exp_sum(logits, self.peak))
                return
            except (ValueError, BufferError):
                pass  # not a contiguous float32 vector: numpy takes any array
        if -_EXP_SAFE < self.peak < _EXP_SAFE:
            probs = np.exp(logits, out=work)  # no shift needed: exp(peak) cannot overflow
            self._probs = probs
            total = float(probs.sum())
            if total > 0.0:
                self.log_z = math.log(total)
            else:  # everything underflowed: shift by the peak after all
                self._shifted(logits, work)
        else:
            self._shifted(logits, work)

    def _shifted(self, logits: np.ndarray, work: np.ndarray | None) -> None:
        probs = np.subtract(logits, np.float32(self.peak), out=work)
        np.exp(probs, out=probs)
        self._probs = probs
        self.log_z = self.peak + float(np.log(float(probs.sum())))

    def surprisal(self, token: int) -> float:
        """-ln p(token) before any gate mask."""
        return self.log_z - float(self.scaled[token])

    def unnormalised(self) -> np.ndarray:
        """exp(scaled - c) for some constant c, for the sampler (only ratios matter)."""
        if self._probs is None:
            probs = np.subtract(self.scaled, np.float32(self.peak), out=self._work)
            self._probs = np.exp(probs, out=probs)
        return self._probs


def threshold_mask(
    scaled: np.ndarray, min_logit: float, exempt: Collection[int], allowed: np.ndarray | None
) -> np.ndarray:
    """The boolean mask of tokens at or above ``min_logit`` (plus ``exempt``), and ``allowed``."""
    mask = scaled >= np.float32(min_logit)
    for token in exempt:
        mask[token] = True
    if allowed is not None:
        np.logical_and(mask, allowed, out=mask)
    return mask


class Sampler:
    """Draws tokens reproducibly: one uniform number per draw from a seeded generator."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def draw(
        self,
        dist: Distribution,
        banned: Collection[int],
        allowed: np.ndarray | None,
        min_logit: float | None = None,
        exempt: Collection[int] = (),
    ) -> int | None:
        """A token id, or None when the masks leave nothing. ``min_logit`` disallows every token
        whose scaled logit is below it, except the ids in ``exempt``."""
        if self.params.temperature == 0:
            # the common case: the best token passes every mask, no full-vocabulary pass needed
            best = dist.best
            if (
                best not in banned
                and (allowed is None or allowed[best])
                and (min_logit is None or dist.scaled[best] >= min_logit or best in exempt)
            ):
                return best
        if min_logit is not None:
            allowed = threshold_mask(dist.scaled, min_logit, exempt, allowed)
        if self.params.temperature == 0:
            return self._greedy(dist.scaled, banned, allowed)
        token = self._sample(dist.unnormalised(), banned, allowed)
        if token is None and (banned or allowed is not None):
            # the masks kept only tokens whose probability underflowed next to the global peak:
            # renormalise over what is left (rare path, so the copy is fine)
            masked = np.where(allowed, dist.scaled, -np.inf) if allowed is not None else dist.scaled.copy()
            if banned:
                masked[np.fromiter(banned, dtype=np.int64)] = -np.inf
            peak = masked.max()
            if not np.isfinite(peak):
                return None
            token = self._sample(np.exp(masked - peak), (), None)
        return token

    @staticmethod
    def _greedy(scaled: np.ndarray, banned: Collection[int], allowed: np.ndarray | None) -> int | None:
        if allowed is None and not banned:
            return int(scaled.argmax())
        masked = np.where(allowed, scaled, -np.inf) if allowed is not None else scaled.copy()
        if banned:
            masked[np.fromiter(banned, dtype=np.int64)] = -np.inf
        best = int(masked.argmax())
        return None if masked[best] == -np.inf else best

    def _sample(self, probs: np.ndarray, banned: Collection[int], allowed: np.ndarray | None) -> int | None:
        p = probs * allowed if allowed is not None else probs
        if banned:
            if p is probs:
                p = probs.copy()
            p[np.fromiter(banned, dtype=np.int64)] = 0.0
        k = self.params.top_k
        candidates: np.ndarray | None = None
        if k and k < p.size:
            candidates = np.argpartition(p, -k)[-k:]
        if self.params.top_p < 1.0:
            candidates = self._nucleus(p, candidates)
        u = self.rng.random()
        if candidates is not None:
            weights = p[candidates].astype(np.float64)
            total = weights.sum()
            if total <= 0:
                return None
            idx = int(np.searchsorted(np.cumsum(weights), u * total, side="right"))
            return int(candidates[min(idx, candidates.size - 1)])
        cdf = np.cumsum(p, dtype=np.float64)
        total = cdf[-1]
        if total <= 0:
            return None
        return int(min(np.searchsorted(cdf, u * total, side="right"), p.size - 1))

    def _nucleus(self, p: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
        total = float((p[candidates] if candidates is not None else p).sum(dtype=np.float64))
        pool = candidates if candidates is not None else np.arange(p.size)
        if candidates is None and p.size > _TOP_P_WINDOW:
            window = np.argpartition(p, -_TOP_P_WINDOW)[-_TOP_P_WINDOW:]
            if p[window].sum(dtype=np.float64) >= self.params.top_p * total:
                pool = window
        order = pool[np.argsort(-p[pool], kind="stable")]
        mass = np.cumsum(p[order], dtype=np.float64)
        cut = int(np.searchsorted(mass, self.params.top_p * total, side="left")) + 1
        return order[:cut]
