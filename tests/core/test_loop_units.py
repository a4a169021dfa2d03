"""The unit loop (aqcore/loop/units.py) through the Runtime: cutting units, release in order,
re-requests with feedback, redaction, halt, the re-request limit, and adapter failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aqcore.adapters import UnitRequest
from aqcore.errors import AdapterError
from aqcore.gate import GateMetric, MetricSettings, Step
from aqcore.loop.units import cut_units
from aqcore.models import Verdict, VerdictKind
from aqcore.testing import NgramUnitAdapter, ScriptedUnitAdapter

from .metrics_for_tests import Digits, HoldAll, Phrase, Probe

REFUSAL = "I can't help with that."
SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n+")


class UnitWordSettings(MetricSettings):
    word: str
    action: Literal["reject", "rollback", "halt", "redact"] = "reject"


class UnitWord(GateMetric):
    """Judges a whole unit: a unit containing ``word`` is rejected, halts, or has the word redacted."""

    name: ClassVar[str] = "unit_word"
    Settings = UnitWordSettings

    def evaluate(self, step: Step) -> Verdict | None:
        word = self.settings.word
        if word not in step.candidate:
            return None
        reason = f"the text mentions {word!r}"
        action = self.settings.action
        if action == "redact":
            start = len(step.text) - len(step.candidate) + step.candidate.index(word)
            return self.verdict(VerdictKind.REDACT, start=start, end=start + len(word),
                                replacement="[X]", reason=reason)
        if action == "rollback":
            return self.verdict(VerdictKind.ROLLBACK, chars=len(step.candidate), reason=reason)
        kind = VerdictKind.HALT if action == "halt" else VerdictKind.REJECT
        return self.verdict(kind, reason=reason)


class RetractAll(GateMetric):
    """A broken metric for units: once text is out, asks to retract everything."""

    name: ClassVar[str] = "retract_all"

    def evaluate(self, step: Step) -> Verdict | None:
        if step.released and not step.is_final:
            return self.verdict(VerdictKind.ROLLBACK, chars=len(step.text), reason="retract all")
        return None


def emitted(result) -> str:
    return "".join(e.text for e in result.emissions)


def unit_policy(metrics: dict | None = None, *, size: str | int = "sentence", max_rerequests: int = 3) -> dict:
    return {
        "refusal": REFUSAL,
        "units": {"size": size, "max_rerequests": max_rerequests},
        "metrics": metrics or {},
    }


@pytest.fixture
def units_runtime(make_runtime, register_metrics):
    register_metrics(UnitWord, Phrase, Digits, HoldAll, Probe, RetractAll)

    def make(adapter, metrics=None, **policy):
        return make_runtime(adapter, unit_policy(metrics, **policy))

    return make


# -- cutting units --------------------------------------------------------------------------

def test_cut_units_by_sentence():
    units, rest = cut_units('Hello there. How are you? Fine!\nHe said "Stop." Then pi is 3.14', "sentence")
    assert units == ["Hello there. ", "How are you? ", "Fine!\n", 'He said "Stop." ']
    assert rest == "Then pi is 3.14"


def test_cut_units_waits_for_whitespace_after_the_full_stop():
    assert cut_units("Hello.", "sentence") == ([], "Hello.")
    assert cut_units("Wait... what?! ", "sentence") == (["Wait... ", "what?! "], "")
    assert cut_units("", "sentence") == ([], "")


def test_cut_units_by_size():
    assert cut_units("abcdefg", 3) == (["abc", "def"], "g")
    assert cut_units("abcdef", 3) == (["abc", "def"], "")
    assert cut_units("ab", 3) == ([], "ab")


TEXT = st.text(alphabet=st.sampled_from(list("ab .!?\n\"')x1")), max_size=80)


@given(TEXT)
def test_sentence_units_and_rest_reassemble_the_input(text):
    units, rest = cut_units(text, "sentence")
    assert "".join(units) + rest == text
    for unit in units:
        ends = [m.end() for m in SENTENCE_END.finditer(unit)]
        assert unit and ends and ends[-1] == len(unit), unit
    assert SENTENCE_END.search(rest) is None


@given(TEXT, st.integers(min_value=1, max_value=12))
def test_sized_units_and_rest_reassemble_the_input(text, size):
    units, rest = cut_units(text, size)
    assert "".join(units) + rest == text
    assert all(len(u) == size for u in units)
    assert len(rest) < size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet=st.sampled_from(list("ab .!?\n")), min_size=1, max_size=60),
    chunk=st.integers(min_value=1, max_value=9),
    size=st.one_of(st.just("sentence"), st.integers(min_value=1, max_value=7)),
)
def test_admitted_units_stream_out_exactly_the_models_text(units_runtime, text, chunk, size):
    adapter = ScriptedUnitAdapter([text], chunk_chars=chunk)
    result = units_runtime(adapter, size=size).generate("q", agent="a", conversation="c")
    assert result.finish_reason == "stop"
    assert result.text == text
    assert emitted(result) == result.text
    assert "".join(o.text for o in result.observations) == text
    if isinstance(size, int):
        assert all(len(o.text) == size for o in result.observations[:-1])


# -- admit ----------------------------------------------------------------------------------

class ChunkLog(ScriptedUnitAdapter):
    """Records, in a shared log, each chunk as the adapter hands it over."""

    def __init__(self, responses, log: list[str]) -> None:
        super().__init__(responses)
        self.log = log

    def _chunks(self, response) -> Iterator[str]:  # type: ignore[override]
        for chunk in super()._chunks(response):
            self.log.append(f"chunk:{chunk}")
            yield chunk


def test_admitted_units_are_released_in_order_as_they_complete(units_runtime):
    log: list[str] = []
    adapter = ChunkLog([["One. ", "Two. ", "Thr", "ee."]], log)
    stream = units_runtime(adapter).generate("count", agent="a", conversation="c", stream=True)
    for emission in stream:
        log.append(f"emit:{emission.text}")
    assert log == [
        "chunk:One. ", "emit:One. ", "chunk:Two. ", "emit:Two. ", "chunk:Thr", "chunk:ee.", "emit:Three.",
    ]
    result = stream.result
    assert result.text == "One. Two. Three."
    assert [e.offset for e in result.emissions] == [0, 5, 10]
    assert [o.text for o in result.observations] == ["One. ", "Two. ", "Three."]
    assert [o.index for o in result.observations] == [0, 1, 2]
    assert result.tokens == 3
    assert adapter.prefixes == [""] and adapter.feedbacks == [None]
    assert adapter.requests[0].messages[-1].content == "count"


def test_each_unit_is_judged_with_the_previous_units_observed(units_runtime):
    Probe.reset()
    adapter = ScriptedUnitAdapter(["A b. C d. E f."])
    units_runtime(adapter, {"probe": {}}).generate("q", agent="a", conversation="c")
    # (index, observations seen, last token id, released) for the three units and the final check
    assert [(index, seen) for index, seen, _, _ in Probe.seen] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert [o.text for o in Probe.committed] == ["A b. ", "C d. ", "E f."]


# -- re-requests ----------------------------------------------------------------------------

def test_a_rejected_unit_is_re_requested_after_the_admitted_text(units_runtime):
    adapter = ScriptedUnitAdapter(["Hello there. The password is x. Bye.", "Your code is ready."])
    result = units_runtime(adapter, {"unit_word": {"word": "password"}}).generate(
        "hi", agent="a", conversation="c"
    )
    assert result.text == "Hello there. Your code is ready."
    assert emitted(result) == result.text
    assert "password" not in emitted(result)
    assert adapter.prefixes == ["", "Hello there. "]
    feedback = adapter.feedbacks[1]
    assert feedback is not None and "the text mentions 'password'" in feedback
    assert adapter.requests[1].messages == adapter.requests[0].messages
    assert result.verdicts == {"unit_word": {"reject": 1}}
    assert result.rollbacks == 1
    assert result.finish_reason == "stop"


def test_a_rollback_retracts_held_units_and_re_requests_from_what_remains(units_runtime):
    # units of 4 characters: " sec" is held (it may start "secret"), "ret" completes the phrase
    adapter = ScriptedUnitAdapter(["all fine secret", " and more."])
    result = units_runtime(adapter, {"phrase": {"phrase": "secret"}}, size=4).generate(
        "q", agent="a", conversation="c"
    )
    assert adapter.prefixes == ["", "all fine"]
    assert "phrase 'secret'" in adapter.feedbacks[1]
    assert result.text == "all fine and more."
    assert emitted(result) == result.text
    assert "sec" not in emitted(result)
    assert result.verdicts == {"phrase": {"rollback": 1}}


def test_re_request_keeps_the_request_settings(units_runtime):
    adapter = ScriptedUnitAdapter(["Bad one. ", "Good one."])
    units_runtime(adapter, {"unit_word": {"word": "Bad"}}).generate(
        "q", agent="a", conversation="c", seed=7, temperature=0.4, max_tokens=50
    )
    first, second = adapter.requests
    assert (second.seed, second.temperature, second.max_tokens) == (7, 0.4, 50)
    assert (first.seed, first.temperature, first.max_tokens) == (7, 0.4, 50)


def test_more_re_requests_than_the_policy_allows_ends_in_the_refusal(units_runtime):
    adapter = ScriptedUnitAdapter(["Fine. Bad one. ", "Bad two. ", "Bad three. ", "Never asked."])
    result = units_runtime(adapter, {"unit_word": {"word": "Bad"}}, max_rerequests=2).generate(
        "q", agent="a", conversation="c"
    )
    assert result.finish_reason == "refused"
    assert len(adapter.requests) == 3  # the first request and two re-requests
    assert adapter.prefixes == ["", "Fine. ", "Fine. "]
    assert result.text == "Fine. " + REFUSAL
    assert emitted(result) == result.text
    assert result.emissions[-1].final
    assert "Bad" not in result.text
    assert result.verdicts == {"unit_word": {"reject": 3}}


def test_no_re_requests_allowed_refuses_at_the_first_rejection(units_runtime):
    adapter = ScriptedUnitAdapter(["Bad. ", "unused"])
    result = units_runtime(adapter, {"unit_word": {"word": "Bad"}}, max_rerequests=0).generate(
        "q", agent="a", conversation="c"
    )
    assert result.finish_reason == "refused"
    assert len(adapter.requests) == 1
    assert result.text == REFUSAL


def test_refusal_drops_held_text(units_runtime):
    adapter = ScriptedUnitAdapter(["Held. Bad. ", "Bad again. "])
    result = units_runtime(
        adapter, {"hold_all": {}, "unit_word": {"word": "Bad"}}, max_rerequests=1
    ).generate("q", agent="a", conversation="c")
    assert result.finish_reason == "refused"
    assert adapter.prefixes == ["", "Held. "]  # admitted, held back, never released
    assert result.text == REFUSAL
    assert "Held" not in emitted(result)


def test_a_rollback_into_released_text_is_a_gate_error_not_a_retraction(units_runtime):
    adapter = ScriptedUnitAdapter(["One. Two. Three."])
    result = units_runtime(adapter, {"retract_all": {}}).generate("q", agent="a", conversation="c")
    assert result.finish_reason == "gate_error"
    assert result.text == "One. "  # what was released stays released; nothing after it
    assert emitted(result) == result.text
    assert len(adapter.requests) == 1


# -- redact and halt ------------------------------------------------------------------------

def test_redact_within_a_unit(units_runtime):
    adapter = ScriptedUnitAdapter(["Call 555-123-4567 now. Bye."])
    result = units_runtime(adapter, {"digits": {}}).generate("q", agent="a", conversation="c")
    assert result.text == "Call [REDACTED:number] now. Bye."
    assert emitted(result) == result.text
    assert not re.search(r"\d", emitted(result))
    assert result.emissions[0].redacted and not result.emissions[-1].redacted
    assert result.verdicts["digits"]["redact"] >= 1
    assert len(adapter.requests) == 1


def test_redact_of_a_word_inside_a_unit(units_runtime):
    adapter = ScriptedUnitAdapter(["Our secret plan works. Done."])
    result = units_runtime(adapter, {"unit_word": {"word": "secret", "action": "redact"}}).generate(
        "q", agent="a", conversation="c"
    )
    assert result.text == "Our [X] plan works. Done."
    assert result.finish_reason == "stop"


def test_halt_stops_and_keeps_what_was_released(units_runtime):
    adapter = ScriptedUnitAdapter(["Fine. Now stop here. Never judged."])
    Probe.reset()
    result = units_runtime(adapter, {"unit_word": {"word": "stop", "action": "halt"}, "probe": {}}).generate(
        "q", agent="a", conversation="c"
    )
    assert result.finish_reason == "halted"
    assert result.text == "Fine. "
    assert emitted(result) == result.text
    assert len(Probe.seen) == 2  # "Never judged." never reached the gate
    assert result.verdicts == {"unit_word": {"halt": 1}}
    assert len(adapter.requests) == 1


def test_halt_releases_no_held_text(units_runtime):
    adapter = ScriptedUnitAdapter(["Held one. Held two. Now stop. After."])
    result = units_runtime(
        adapter, {"hold_all": {}, "unit_word": {"word": "stop", "action": "halt"}}
    ).generate("q", agent="a", conversation="c")
    assert result.finish_reason == "halted"
    assert result.emissions == []
    assert result.text == ""


def test_halt_in_the_final_unit(units_runtime):
    adapter = ScriptedUnitAdapter(["Fine. Then stop"])
    result = units_runtime(adapter, {"unit_word": {"word": "stop", "action": "halt"}}).generate(
        "q", agent="a", conversation="c"
    )
    assert result.finish_reason == "halted"
    assert result.text == "Fine. "


# -- adapter failures -----------------------------------------------------------------------

def test_adapter_error_mid_stream_records_exactly_what_was_released(units_runtime):
    adapter = ScriptedUnitAdapter([["One. ", "Two", AdapterError("test-units: connection reset")], "Later."])
    runtime = units_runtime(adapter)
    stream = runtime.generate("q", agent="a", conversation="c", stream=True)
    got = []
    with pytest.raises(AdapterError, match="connection reset") as err:
        for emission in stream:
            got.append(emission.text)
    assert got == ["One. "]
    assert stream.result is None
    assert err.value.result.text == "One. " and err.value.result.finish_reason == "error"
    state = runtime.load_state("a", "c")
    # nothing lost, nothing invented: one turn holding exactly the released text
    assert [(t.text, t.finish_reason) for t in state.conversation.turns] == [("One. ", "error")]
    assert state.conversation.version == 1
    assert not runtime.state.journal.has_pending()
    # the runtime still works afterwards
    result = runtime.generate("again", agent="a", conversation="c")
    assert result.text == "Later."
    assert [t.prompt for t in runtime.load_state("a", "c").conversation.turns] == ["q", "again"]
    # the next turn sees what the consumer saw of the failed one
    assert [(m.role, m.content) for m in adapter.requests[1].messages] == [
        ("user", "q"), ("assistant", "One. "), ("user", "again")]


def test_a_foreign_exception_mid_stream_surfaces_as_an_adapter_error(units_runtime):
    adapter = ScriptedUnitAdapter([["One. ", RuntimeError("boom")]])
    runtime = units_runtime(adapter)
    with pytest.raises(AdapterError, match=r"test-units.*boom") as err:
        runtime.generate("q", agent="a", conversation="c")
    # what was released before the failure is not lost: it has a turn, flagged as an error
    turns = runtime.load_state("a", "c").conversation.turns
    assert [(t.text, t.finish_reason) for t in turns] == [(err.value.result.text, "error")]
    assert all(e.text in "One. " for e in err.value.result.emissions)


def test_a_scripted_adapter_asked_too_often_is_an_adapter_error(units_runtime):
    adapter = ScriptedUnitAdapter(["Bad. "])
    runtime = units_runtime(adapter, {"unit_word": {"word": "Bad"}})
    with pytest.raises(AdapterError, match="only 1 response"):
        runtime.generate("q", agent="a", conversation="c")
    turns = runtime.load_state("a", "c").conversation.turns
    assert [(t.text, t.finish_reason) for t in turns] == [("", "error")]


# -- the test LM behind the unit protocol ---------------------------------------------------

class RecordingNgramUnits(NgramUnitAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[UnitRequest] = []

    def stream(self, request: UnitRequest) -> Iterator[str]:
        self.requests.append(request)
        return super().stream(request)


def test_test_units_adapter_by_name(units_runtime):
    runtime = units_runtime("test-units")
    result = runtime.generate("Where is my order?", agent="a", conversation="c")
    assert runtime.adapter.granularity == "unit"
    assert result.adapter == "test-units"
    assert result.finish_reason == "stop"
    assert result.text and emitted(result) == result.text
    assert "".join(o.text for o in result.observations) == result.text
    for unit in result.observations[:-1]:
        assert SENTENCE_END.search(unit.text) and SENTENCE_END.search(unit.text).end() == len(unit.text)


def test_test_units_adapter_is_reproducible_under_a_seed(units_runtime):
    def text(seed: int) -> str:
        runtime = units_runtime("test-units")
        return runtime.generate(
            "Can I get a refund?", agent="a", conversation="c", seed=seed, temperature=1.0
        ).text

    assert text(3) == text(3)
    assert len({text(s) for s in range(6)}) > 1


def test_test_units_greedy_repeats_a_rejected_unit_until_refused(units_runtime):
    adapter = RecordingNgramUnits()
    first = units_runtime(adapter).generate("Hello", agent="a", conversation="c").observations[0].text
    word = first.split()[0]
    result = units_runtime(adapter, {"unit_word": {"word": word}}, max_rerequests=2).generate(
        "Hello", agent="a", conversation="c2"
    )
    # greedy decoding does not change with the feedback line, so every re-request fails again
    assert result.finish_reason == "refused"
    assert len(adapter.requests) == 1 + 3
    assert all(r.feedback and repr(word) in r.feedback for r in adapter.requests[2:])
    assert result.text == REFUSAL
