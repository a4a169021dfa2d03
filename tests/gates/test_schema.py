"""schema: llguidance grammars as token masks and as per-unit validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gatedriver import bind, context, policy, run

from aqcore.adapters import Vocabulary
from aqcore.errors import PolicyError
from aqcore.gate import Step
from aqcore.gates.llg import tokenizer_for
from aqcore.testing.scripted import ScriptedAdapter

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}},
    "required": ["a"],
    "additionalProperties": False,
}
PIECES = ["<eos>", "{", "}", '"a"', ":", " ", "1", "2", "hello", '{"a": ', '"x"']


def ids(*pieces: str) -> list[int]:
    return [PIECES.index(p) for p in pieces]


def test_tokenizer_is_built_once_per_vocabulary() -> None:
    vocab = Vocabulary([p.encode() for p in PIECES], eos_ids=frozenset({0}), special=frozenset({0}))
    assert tokenizer_for(vocab) is tokenizer_for(vocab)
    assert tokenizer_for(vocab).vocab_size == len(PIECES)


def test_mask_allows_only_tokens_that_continue_the_grammar() -> None:
    vocab = Vocabulary([p.encode() for p in PIECES], eos_ids=frozenset({0}), special=frozenset({0}))
    pol = policy({"schema": {"json_schema": SCHEMA}})
    (metric,) = bind(pol, context(pol, vocab=vocab))
    empty = Step(
        index=0, text="", candidate="", candidate_id=None, released=0, surprisal=0.0, observations=[]
    )
    mask = metric.mask(empty)
    assert sorted(np.flatnonzero(mask.allowed).tolist()) == sorted(ids("{", '{"a": '))
    assert mask.allowed.dtype == np.bool_ and mask.allowed.shape == (len(PIECES),)


def _script(sequence: list[int]):  # type: ignore[no-untyped-def]
    """Prefer ``sequence`` position by position, but prefer "hello" above everything."""

    def script(generated: tuple[int, ...]) -> dict[int, float]:
        n = len(generated)
        want = sequence[n] if n < len(sequence) else 0
        return {PIECES.index("hello"): 20.0, want: 10.0, 0: 1.0}

    return script


def test_through_the_loop_json(make_runtime) -> None:  # type: ignore[no-untyped-def]
    adapter = ScriptedAdapter(PIECES, _script(ids('{"a": ', "1", "2", "}")), eos=0)
    runtime = make_runtime(adapter, {"metrics": {"schema": {"json_schema": SCHEMA}}})
    result = runtime.generate("give me json", agent="a", conversation="c")
    assert json.loads(result.text) == {"a": 12}
    assert "hello" not in result.text
    assert PIECES.index("hello") not in adapter.accepted


def test_through_the_loop_regex_ends_when_complete(make_runtime) -> None:  # type: ignore[no-untyped-def]
    adapter = ScriptedAdapter(PIECES, _script(ids("1", "2", "1", "2", "1")), eos=0)
    runtime = make_runtime(adapter, {"metrics": {"schema": {"regex": "[12]{3}"}}})
    result = runtime.generate("digits", agent="a", conversation="c")
    assert result.text == "121"


def test_lark_grammar(make_runtime) -> None:  # type: ignore[no-untyped-def]
    adapter = ScriptedAdapter(PIECES, _script(ids("1", "2", " ", "2")), eos=0)
    grammar = 'start: NUM " " NUM\nNUM: /[12]+/'
    runtime = make_runtime(adapter, {"metrics": {"schema": {"lark": grammar}}})
    assert runtime.generate("x", agent="a", conversation="c").text == "12 2"


def test_unit_validation_rolls_back_a_bad_unit() -> None:
    outcome = run({"schema": {"json_schema": SCHEMA}}, ['{"a": ', '"x"}', "12}"], granularity="unit")
    assert outcome.released == '{"a": 12}'
    assert outcome.kinds() == ["rollback"]
    assert "must follow the schema" in outcome.verdicts[0].reason


def test_unit_validation_halts_on_incomplete_output() -> None:
    outcome = run({"schema": {"json_schema": SCHEMA}}, ['{"a": ', "12"], granularity="unit")
    assert outcome.finish == "halted"
    assert "ends before it satisfies the schema" in outcome.verdicts[-1].reason


def test_unit_halt_action() -> None:
    outcome = run(
        {"schema": {"regex": "[a-z ]+", "on_violation": "halt"}}, ["ok then ", "NO"], granularity="unit"
    )
    assert outcome.finish == "halted"
    assert outcome.released == "ok then "


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "exactly one of json_schema, regex, lark"),
        ({"regex": "a", "lark": "start: 'a'"}, "exactly one"),
        ({"regex": "[a-"}, "invalid regex"),
        ({"lark": "start: missing"}, "invalid lark"),
        ({"json_schema": "{not json"}, "not valid JSON"),
        ({"regex": "a", "grammar": "x"}, "unknown key"),
    ],
)
def test_bad_config(table: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        policy({"schema": table})
    assert info.value.key is not None and info.value.key.startswith("metrics.schema")
