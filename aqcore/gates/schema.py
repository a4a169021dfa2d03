"""schema: the output must follow a JSON schema, a regular expression or a Lark grammar.

At token granularity the constraint is a token mask computed by llguidance from the
adapter's vocabulary (only tokens that keep the output a valid prefix can be drawn; once the
grammar is complete only end-of-sequence is). At unit granularity each unit is validated as a
continuation of the text so far, byte by byte; a unit that breaks the grammar is re-requested
with the reason as feedback (``on_violation = "rollback"``) or stops the invocation
(``"halt"``). Output that ends before the grammar is complete halts.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from ..errors import GateError
from ..gate import GateContext, GateMetric, Mask, MetricSettings, Step
from ..models import Observation, Verdict, VerdictKind

STOP_REASON = "stop"


class SchemaSettings(MetricSettings):
    """``[metrics.schema]``: exactly one of ``json_schema``, ``regex``, ``lark``."""

    json_schema: dict[str, Any] | str | None = Field(
        default=None, description="a JSON schema (table or JSON text)"
    )
    regex: str | None = None
    lark: str | None = None
    on_violation: Literal["rollback", "halt"] = "rollback"

    @model_validator(mode="after")
    def _one_grammar(self) -> SchemaSettings:
        given = [k for k in ("json_schema", "regex", "lark") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of json_schema, regex, lark (got {', '.join(given) or 'none'})"
            )
        import llguidance  # imported when a policy uses a grammar, not at plugin discovery

        error = llguidance.LLMatcher.validate_grammar(self.grammar())
        if error:
            raise ValueError(f"invalid {given[0]}: {error.strip()}")
        return self

    def grammar(self) -> str:
        """The llguidance grammar of these settings."""
        import llguidance

        if self.json_schema is not None:
            schema = self.json_schema
            if isinstance(schema, str):
                try:
                    schema = json.loads(schema)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"json_schema is not valid JSON: {exc}") from None
            try:
                return llguidance.LLMatcher.grammar_from_json_schema(schema)
            except ValueError as exc:
                raise ValueError(f"invalid json_schema: {exc}") from None
        if self.regex is not None:
            return llguidance.LLMatcher.grammar_from_regex(self.regex)
        return llguidance.LLMatcher.grammar_from_lark(self.lark or "")


class Schema(GateMetric):
    """Grammar-constrained output through llguidance."""

    name = "schema"
    Settings = SchemaSettings
    settings: SchemaSettings

    def __init__(self, settings: SchemaSettings, context: GateContext) -> None:  # type: ignore[override]
        import llguidance
        import llguidance.numpy as llnp

        from .llg import byte_tokenizer, tokenizer_for

        super().__init__(settings, context)
        self._fill = llnp.fill_next_token_bitmask
        self._token_mode = context.granularity == "token" and context.vocab is not None
        tokenizer = tokenizer_for(context.vocab) if self._token_mode else byte_tokenizer()  # type: ignore[arg-type]
        self._matcher = llguidance.LLMatcher(tokenizer, settings.grammar(), log_level=0)
        if self._matcher.is_error():
            raise GateError(f"schema: llguidance rejected the grammar: {self._matcher.get_error()}")
        self._size = context.vocab.size if context.vocab is not None else 0
        self._bitmask = llnp.allocate_token_bitmask(1, tokenizer.vocab_size) if self._token_mode else None
        # (end offset in characters, tokens consumed) per committed step, for rollbacks.
        self._chunks: list[tuple[int, int, str]] = []

    # -- token granularity ----------------------------------------------------------------

    def mask(self, step: Step) -> Mask | None:
        if self._bitmask is None:
            return None
        import numpy as np  # loaded with llguidance.numpy in __init__; not at aq's start

        self._fill(self._matcher, self._bitmask)
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")[: self._size]
        return Mask(allowed=bits.view(np.bool_), stop_reason=STOP_REASON)

    # -- both granularities ----------------------------------------------------------------

    def evaluate(self, step: Step) -> Verdict | None:
        if step.is_final:
            if self._matcher.is_accepting():
                return None
            return self.verdict(VerdictKind.HALT, reason="the output ends before it satisfies the schema")
        tokens = self._tokens(step)
        if not tokens:
            return None
        accepted = self._matcher.validate_tokens(tokens)
        if accepted == len(tokens):
            return None
        if self._token_mode:
            return self.verdict(VerdictKind.REJECT, reason="the token does not continue the schema")
        data = step.candidate.encode("utf-8")
        reason = (
            f"the output must follow the schema; it cannot continue with {data[accepted : accepted + 20]!r} "
            f"after {len(step.text.encode('utf-8')) - len(data) + accepted} bytes"
        )
        if self.settings.on_violation == "halt" or len(step.candidate) > len(step.text) - step.released:
            return self.verdict(VerdictKind.HALT, reason=reason)
        return self.verdict(VerdictKind.ROLLBACK, chars=len(step.candidate), reason=reason)

    def on_commit(self, step: Step, observation: Observation) -> None:
        tokens = self._tokens(step)
        if tokens and not self._matcher.consume_tokens(tokens):
            raise GateError(f"schema: committed text the grammar refuses: {self._matcher.get_error()}")
        self._chunks.append((len(step.text), len(tokens), step.candidate))

    def on_rollback(self, length: int) -> None:
        drop = 0
        redo = ""
        while self._chunks and self._chunks[-1][0] > length:
            end, count, text = self._chunks.pop()
            drop += count
            start = end - len(text)
            if start < length and not self._token_mode:  # a unit cut in the middle: keep its head
                redo = text[: length - start]
        if drop:
            self._matcher.rollback(drop)
        if redo:
            tokens = list(redo.encode("utf-8"))
            self._matcher.consume_tokens(tokens)
            self._chunks.append((length, len(tokens), redo))

    def _tokens(self, step: Step) -> list[int]:
        if self._token_mode:
            return [] if step.candidate_id is None else [step.candidate_id]
        return list(step.candidate.encode("utf-8"))
