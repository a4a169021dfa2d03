"""The token loop: every verdict kind, holdback, recursive closure, masks, limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aqcore.testing import ScriptedAdapter

from .metrics_for_tests import (
    BadRollback,
    BanIds,
    Digits,
    HaltPiece,
    HoldAll,
    Phrase,
    Probe,
    RejectPiece,
)


def emitted(result) -> str:
    return "".join(e.text for e in result.emissions)


def test_admit_releases_everything_in_order(make_runtime):
    adapter = ScriptedAdapter.from_pieces(["Hello", ", ", "wor", "ld", "."])
    result = make_runtime(adapter).generate("hi", agent="a", conversation="c")
    assert result.text == "Hello, world."
    assert emitted(result) == result.text
    assert result.finish_reason == "stop"
    assert result.tokens == 5
    assert [e.offset for e in result.emissions] == [
        sum(len(e.text) for e in result.emissions[:i]) for i in range(len(result.emissions))
    ]


def test_reject_bans_the_candidate_and_resamples(make_runtime, register_metrics):
    register_metrics(RejectPiece)
    vocab = ["<eos>", "I ", "hate", "like", " tea"]

    def script(generated):
        return {1: 5.0} if not generated else {2: 9.0, 3: 8.0} if len(generated) == 1 else (
            {4: 5.0} if len(generated) == 2 else {0: 5.0})

    adapter = ScriptedAdapter(vocab, script, eos=0)
    runtime = make_runtime(adapter, {"metrics": {"reject_piece": {"piece": "hate"}}})
    result = runtime.generate("x", agent="a", conversation="c")
    assert result.text == "I like tea"
    assert result.verdicts == {"reject_piece": {"reject": 1}}
    assert 2 not in adapter.accepted  # never reached the model's context
    assert adapter.rollbacks == []


def test_rollback_with_holdback_never_releases_the_phrase(make_runtime, register_metrics):
    register_metrics(Phrase)
    vocab = ["<eos>", "The ", "pass", "wo", "rd", " is", " secret", " x"]

    def script(generated):
        n = len(generated)
        if n == 0:
            return {1: 5.0}
        if n == 1:
            return {2: 9.0, 6: 8.0}
        if generated[1] == 2:
            return {3: 9.0} if n == 2 else {4: 9.0} if n == 3 else {5: 9.0} if n == 4 else {0: 9.0}
        return {7: 9.0} if n == 2 else {0: 9.0}

    adapter = ScriptedAdapter(vocab, script, eos=0)
    result = make_runtime(adapter, {"metrics": {"phrase": {"phrase": "password"}}}).generate(
        "x", agent="a", conversation="c"
    )
    assert "password" not in emitted(result)
    assert result.text == "The  secret x"
    # "pass" and "wo" were held, then rolled back as a span; "pass" is banned at position 1
    assert adapter.rollbacks == [2]
    assert result.verdicts == {"phrase": {"rollback": 1}}
    assert result.rollbacks == 1
    assert all("pass" not in e.text for e in result.emissions)


def test_redact_replaces_the_span_in_released_text_only(make_runtime, register_metrics):
    register_metrics(Digits)
    adapter = ScriptedAdapter.from_pieces(["Call ", "555", "-", "01", "23", " now"])
    result = make_runtime(adapter, {"metrics": {"digits": {}}}).generate("x", agent="a", conversation="c")
    assert result.text == "Call [REDACTED:number] now"
    assert any(e.redacted for e in result.emissions)
    assert "555" not in emitted(result)
    # the model keeps its own text: every piece was accepted, nothing rolled back
    assert adapter.rollbacks == []
    assert "".join(o.text for o in result.observations) == "Call 555-0123 now"


def test_halt_stops_and_drops_held_text(make_runtime, register_metrics):
    register_metrics(HaltPiece, HoldAll)
    adapter = ScriptedAdapter.from_pieces(["safe ", "held ", "boom", " more"])
    policy = {"metrics": {"halt_piece": {"piece": "boom"}, "hold_all": {}}}
    result = make_runtime(adapter, policy).generate("x", agent="a", conversation="c")
    assert result.finish_reason == "halted"
    assert result.text == ""  # everything was held; a halt releases nothing held
    assert result.verdicts == {"halt_piece": {"halt": 1}}


def test_halt_keeps_what_was_released_before(make_runtime, register_metrics):
    register_metrics(HaltPiece)
    adapter = ScriptedAdapter.from_pieces(["safe ", "text ", "boom", " more"])
    result = make_runtime(adapter, {"metrics": {"halt_piece": {"piece": "boom"}}}).generate(
        "x", agent="a", conversation="c"
    )
    assert result.finish_reason == "halted"
    assert result.text == "safe text "


def test_max_rollbacks_then_the_refusal(make_runtime, register_metrics):
    register_metrics(Phrase)
    # every branch spells the phrase: each rollback bans one token, the next best is the same text
    vocab = ["<eos>", "b", "b", "b", "b", "b", "ad"]

    def script(generated):
        return {1: 9.0, 2: 8.0, 3: 7.0, 4: 6.0, 5: 5.0} if not generated else {6: 9.0}

    adapter = ScriptedAdapter(vocab, script, eos=0)
    policy = {"max_rollbacks": 3, "refusal": "Sorry.", "metrics": {"phrase": {"phrase": "bad"}}}
    result = make_runtime(adapter, policy).generate("x", agent="a", conversation="c")
    assert result.finish_reason == "refused"
    assert result.text == "Sorry."
    assert "bad" not in emitted(result)
    assert adapter.rollbacks == [1, 1, 1]  # the fourth rollback is refused instead


def test_reject_resample_limit_gives_the_refusal(make_runtime, register_metrics):
    register_metrics(RejectPiece)
    adapter = ScriptedAdapter(["<eos>", "no", "no", "no"], lambda g: {1: 3.0, 2: 2.0, 3: 1.0, 0: -50.0}, eos=0)
    policy = {"max_resamples": 1, "refusal": "Refused.", "metrics": {"reject_piece": {"piece": "no"}}}
    result = make_runtime(adapter, policy).generate("x", agent="a", conversation="c")
    assert result.finish_reason == "refused"
    assert result.text == "Refused."


def test_max_tokens_ends_the_generation(make_runtime):
    adapter = ScriptedAdapter(["<eos>", "la"], lambda g: {1: 5.0}, eos=0)
    result = make_runtime(adapter, {"max_tokens": 7}).generate("x", agent="a", conversation="c")
    assert result.finish_reason == "max_tokens"
    assert result.text == "la" * 7


def test_mask_bans_tokens_before_sampling(make_runtime, register_metrics):
    register_metrics(BanIds)
    adapter = ScriptedAdapter(["<eos>", "A", "B"], lambda g: {1: 9.0, 2: 5.0} if len(g) < 3 else {0: 9.0}, eos=0)
    result = make_runtime(adapter, {"metrics": {"ban_ids": {"ids": [1]}}}).generate("x", agent="a", conversation="c")
    assert result.text == "BBB"
    assert 1 not in adapter.accepted


def test_mask_leaving_only_eos_ends_with_its_stop_reason(make_runtime, register_metrics):
    register_metrics(BanIds)
    adapter = ScriptedAdapter(["<eos>", "A"], lambda g: {1: 9.0}, eos=0)
    result = make_runtime(adapter, {"metrics": {"ban_ids": {"only_eos": True}}}).generate(
        "x", agent="a", conversation="c"
    )
    assert result.finish_reason == "budget_exhausted"
    assert result.text == ""


def test_recursive_closure_step_t_sees_observation_t_minus_1(make_runtime, register_metrics):
    Probe.reset()
    register_metrics(Probe)
    adapter = ScriptedAdapter.from_pieces(["a", "b", "c", "d"])
    make_runtime(adapter, {"metrics": {"probe": {}}}).generate("x", agent="a", conversation="c")
    token_steps = [s for s in Probe.seen if s[0] < 4]
    assert [s[0] for s in token_steps] == [0, 1, 2, 3]
    for index, n_obs, last_id, _released in token_steps:
        assert n_obs == index
        if index:
            assert last_id == Probe.committed[index - 1].token_id


def test_a_metric_that_reaches_into_released_text_fails_closed(make_runtime, register_metrics):
    register_metrics(BadRollback)
    adapter = ScriptedAdapter.from_pieces(["one ", "two ", "three ", "four ", "five"])
    result = make_runtime(adapter, {"metrics": {"bad_rollback": {"after": 2}}}).generate(
        "x", agent="a", conversation="c"
    )
    assert result.finish_reason == "gate_error"
    assert adapter.rollbacks == []  # nothing released was retracted from the model either
    assert result.text == "one two "


def test_special_tokens_add_no_text(make_runtime):
    adapter = ScriptedAdapter.from_sequence(["<eos>", "hi", "<|tool|>"], [1, 2, 1], eos=0, special=[0, 2])
    result = make_runtime(adapter).generate("x", agent="a", conversation="c")
    assert result.text == "hihi"


def test_utf8_split_across_tokens_is_released_whole(make_runtime):
    euro = "€".encode()
    adapter = ScriptedAdapter.from_pieces([b"5 ", euro[:1], euro[1:], b" each"])
    result = make_runtime(adapter).generate("x", agent="a", conversation="c")
    assert result.text == "5 € each"
    assert all("\ufffd" not in e.text for e in result.emissions)


def test_same_seed_same_output_on_the_test_lm(make_runtime):
    outputs = set()
    for _ in range(2):
        runtime = make_runtime("test", {"max_tokens": 30})
        outputs.add(runtime.generate("refund", agent="a", conversation="c", seed=7, temperature=0.9).text)
    assert len(outputs) == 1
    other = make_runtime("test", {"max_tokens": 30}).generate(
        "refund", agent="a", conversation="c", seed=8, temperature=0.9
    )
    assert other.text not in outputs or other.tokens > 0


ALPHABET = ["a", "b", "ab", "ba", "bb", " ", "aa"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picks=st.lists(st.lists(st.integers(0, len(ALPHABET) - 1), min_size=1, max_size=4), min_size=1, max_size=14),
    phrase=st.sampled_from(["abba", "bab", "aab", "b b"]),
)
def test_property_no_released_byte_is_ever_rolled_back(make_runtime, register_metrics, pm, picks, phrase):
    """Random scripts over an alphabet of overlapping pieces: the phrase never leaks, every
    emission is a prefix-consistent piece of the result, and every rollback stops at or after
    the released offset."""
    Probe.reset()
    if "phrase" not in pm.metric_classes():
        register_metrics(Phrase, Probe)
    vocab = ["<eos>", *ALPHABET]

    def script(generated):
        n = len(generated)
        if n >= len(picks):
            return {0: 9.0}
        prefs = picks[n]
        return {i + 1: 9.0 - j for j, i in enumerate(prefs)} | {0: 0.5}

    adapter = ScriptedAdapter(vocab, script, eos=0)
    policy = {"max_rollbacks": 6, "refusal": "", "metrics": {"phrase": {"phrase": phrase}, "probe": {}}}
    result = make_runtime(adapter, policy).generate("x", agent="a", conversation="c")
    out = emitted(result)
    assert phrase not in out
    assert out == result.text
    offset = 0
    for emission in result.emissions:
        assert emission.offset == offset
        offset += len(emission.text)
    for length, released in Probe.rollbacks:
        assert length >= released
    Probe.reset()


def test_invalid_sampling_arguments_are_usage_errors(make_runtime):
    from aqcore.errors import UsageError

    runtime = make_runtime(ScriptedAdapter.from_pieces(["a"]))
    with pytest.raises(UsageError, match="temperature"):
        runtime.generate("x", agent="a", conversation="c", temperature=-1)
    with pytest.raises(UsageError, match="top_p"):
        runtime.generate("x", agent="a", conversation="c", top_p=0)
    with pytest.raises(UsageError, match="agent"):
        runtime.generate("x", agent="bad id!", conversation="c")
    with pytest.raises(UsageError, match="max_tokens"):
        runtime.generate("x", agent="a", conversation="c", max_tokens=0)


def test_logits_buffer_is_not_scaled_twice(make_runtime):
    """At temperature != 1 the loop scales into its own buffer; the adapter's view is untouched."""
    adapter = ScriptedAdapter(["<eos>", "x"], lambda g: {1: 2.0, 0: 1.0} if len(g) < 2 else {0: 9.0}, eos=0)
    runtime = make_runtime(adapter)
    runtime.generate("x", agent="a", conversation="c", temperature=0.5, seed=1)
    view = adapter.logits()
    assert np.isclose(view.max(), 9.0)


class ReturnsText(Phrase):
    """A broken metric: answers with a string instead of a Verdict."""

    name = "returns_text"

    def evaluate(self, step):  # type: ignore[override]
        return "admit"


def test_a_metric_answering_with_something_else_than_a_verdict_is_a_gate_error_naming_it(
    make_runtime, register_metrics
):
    from aqcore.errors import GateError

    register_metrics(ReturnsText)
    adapter = ScriptedAdapter.from_pieces(["Hello", "."])
    runtime = make_runtime(adapter, {"metrics": {"returns_text": {}}})
    expected = "gate metric 'returns_text' returned 'admit' on step 0; expected a Verdict"
    with pytest.raises(GateError, match=expected) as caught:
        runtime.generate("hi", agent="a", conversation="c")
    assert caught.value.result.finish_reason == "error"  # type: ignore[attr-defined]
    assert caught.value.result.text == ""  # type: ignore[attr-defined]


def test_admits_with_holds_combine_to_the_longest_hold_and_interventions_keep_their_order():
    from aqcore.loop.judge import ADMITTED, _combine, held
    from aqcore.models import Verdict, VerdictKind

    assert held(3) is held(3) and held(3).hold == 3 and held(3).kind is VerdictKind.ADMIT
    assert ADMITTED.hold == 0 and not ADMITTED.interventions
    redact = Verdict(metric="a", kind=VerdictKind.REDACT, start=0, end=2, replacement="x", hold=5)
    short = Verdict(metric="b", kind=VerdictKind.ROLLBACK, chars=2)
    long = Verdict(metric="c", kind=VerdictKind.ROLLBACK, chars=7)
    judgement = _combine(1, [redact, short, long])
    assert judgement.kind is VerdictKind.ROLLBACK and judgement.chars == 7 and judgement.decisive is long
    assert judgement.hold == 5 and judgement.redactions == (redact,)
    assert judgement.interventions == (redact, short, long)
    halted = _combine(0, [long, Verdict(metric="d", kind=VerdictKind.HALT)])
    assert halted.kind is VerdictKind.HALT and halted.decisive.metric == "d"  # type: ignore[union-attr]
