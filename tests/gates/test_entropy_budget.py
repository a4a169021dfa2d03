"""entropy_budget: the surprisal mask, spend across scopes, the top-set restriction."""

from __future__ import annotations

import numpy as np
import pytest
from gatedriver import bind, context, policy

from aqcore.adapters import Vocabulary
from aqcore.errors import PolicyError
from aqcore.gate import Step
from aqcore.models import AgentState, ConversationState, Observation, VerdictKind
from aqcore.sampling import threshold_mask

VOCAB = Vocabulary(
    token_bytes=[b"", *(bytes([97 + i % 26]) * (1 + i // 26) for i in range(63))],
    eos_ids=frozenset({0}),
    special=frozenset({0}),
)


def metric(budgets: dict, table: dict | None = None, **ctx_args):  # type: ignore[no-untyped-def]
    pol = policy({"entropy_budget": table or {}}, budgets=budgets)
    (m,) = bind(pol, context(pol, vocab=VOCAB, **ctx_args))
    return m


def dist(seed: int = 0) -> tuple[np.ndarray, float]:
    logits = np.random.default_rng(seed).normal(0, 3, VOCAB.size).astype(np.float32)
    logits.flags.writeable = False  # the metric must never write into the loop's logits
    log_z = float(np.logaddexp.reduce(logits.astype(np.float64)))
    return logits, log_z


def step(logits: np.ndarray, log_z: float, spent: list[float] = (), **kw) -> Step:  # type: ignore[assignment]
    obs = [Observation(index=i, text="x", surprisal=s) for i, s in enumerate(spent)]
    return Step(
        index=len(obs),
        text="",
        candidate="",
        candidate_id=None,
        released=0,
        surprisal=0.0,
        observations=obs,
        scaled_logits=logits,
        log_z=log_z,
        **kw,
    )


def allowed_of(mask, logits) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What the loop lets through under ``mask`` (EOS, id 0, is never cut by a threshold)."""
    if mask.min_logit is None:
        return mask.allowed
    return threshold_mask(logits, mask.min_logit, (0,), mask.allowed)


def test_mask_allows_exactly_the_tokens_that_fit() -> None:
    logits, log_z = dist()
    m = metric({"invocation": 10.0})
    mask = m.mask(step(logits, log_z, spent=[3.0, 2.5]))
    surprisal = log_z - logits.astype(np.float64)
    expected = surprisal <= 4.5 + 1e-6
    expected[0] = True
    assert mask.stop_reason == "budget_exhausted"
    assert mask.allowed is None and mask.min_logit is not None  # a threshold: no vocabulary pass
    assert np.array_equal(allowed_of(mask, logits), expected)
    assert 1 < allowed_of(mask, logits).sum() < VOCAB.size


def test_smallest_remaining_budget_wins_and_stored_spend_counts() -> None:
    logits, log_z = dist(1)
    m = metric(
        {"invocation": 50.0, "conversation": 20.0, "agent": 100.0},
        conversation_state=ConversationState(entropy_spent=15.0),
        agent_state=AgentState(entropy_spent=1.0),
    )
    assert m.remaining([Observation(index=0, text="x", surprisal=2.0)]) == pytest.approx(3.0)
    mask = m.mask(step(logits, log_z, spent=[2.0]))
    assert np.array_equal(allowed_of(mask, logits)[1:], (log_z - logits.astype(np.float64))[1:] <= 3.0 + 1e-6)


def test_exhausted_budget_leaves_only_eos() -> None:
    logits, log_z = dist(2)
    m = metric({"agent": 5.0}, agent_state=AgentState(entropy_spent=5.0))
    mask = m.mask(step(logits, log_z))
    assert np.flatnonzero(allowed_of(mask, logits)).tolist() == [0]


def test_no_budget_no_mask() -> None:
    logits, log_z = dist()
    assert metric({}).mask(step(logits, log_z)) is None


def test_spend_is_tracked_incrementally_and_after_rollback() -> None:
    m = metric({"invocation": 10.0})
    obs = [Observation(index=i, text="x", surprisal=1.0) for i in range(4)]
    assert m.remaining(obs[:2]) == pytest.approx(8.0)
    assert m.remaining(obs) == pytest.approx(6.0)
    assert m.remaining(obs[:1]) == pytest.approx(9.0)  # a rollback shortened the list


def test_evaluate_rejects_a_candidate_over_budget_but_never_eos() -> None:
    m = metric({"invocation": 2.0})
    over = Step(
        index=0, text="ab", candidate="ab", candidate_id=5, released=0, surprisal=2.5, observations=[]
    )
    assert m.evaluate(over).kind is VerdictKind.REJECT
    fits = Step(
        index=0, text="ab", candidate="ab", candidate_id=5, released=0, surprisal=1.5, observations=[]
    )
    assert m.evaluate(fits) is None
    eos = Step(index=0, text="", candidate="", candidate_id=0, released=0, surprisal=9.0, observations=[])
    assert m.evaluate(eos) is None


def test_unit_granularity_halts_when_spent() -> None:
    m = metric(
        {"conversation": 3.0}, conversation_state=ConversationState(entropy_spent=3.0), granularity="unit"
    )
    unit = Step(
        index=0, text="Hi.", candidate="Hi.", candidate_id=None, released=0, surprisal=0.0, observations=[]
    )
    verdict = m.evaluate(unit)
    assert verdict.kind is VerdictKind.HALT and verdict.reason == "budget_exhausted"


def test_top_set_restriction_above_max_entropy() -> None:
    logits = np.zeros(VOCAB.size, dtype=np.float32)
    logits[1:5] = 5.0  # four likely tokens, the rest flat: high entropy overall
    log_z = float(np.logaddexp.reduce(logits.astype(np.float64)))
    m = metric({}, {"max_token_entropy": 0.5, "restrict_mass": 0.8})
    mask = m.mask(step(logits, log_z))
    assert np.flatnonzero(allowed_of(mask, logits)).tolist() == [0, 1, 2, 3, 4]
    calm = metric({}, {"max_token_entropy": 10.0})
    assert calm.mask(step(logits, log_z)) is None


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"max_token_entropy": 0}, "metrics.entropy_budget.max_token_entropy"),
        ({"restrict_mass": 1.5}, "metrics.entropy_budget.restrict_mass"),
        ({"invocation": 10}, "metrics.entropy_budget.invocation"),
    ],
)
def test_bad_config(table: dict, key: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy({"entropy_budget": table})
    assert info.value.key == key, str(info.value)


def test_bad_budget_is_reported_by_the_policy() -> None:
    with pytest.raises(PolicyError) as info:
        policy({"entropy_budget": {}}, budgets={"invocation": -1})
    assert info.value.key == "budgets.invocation"
