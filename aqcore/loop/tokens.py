"""The governed decode loop at token granularity (docs/adapters.md describes it)."""

from __future__ import annotations

import codecs
from collections.abc import Generator
from collections.abc import Set as AbstractSet

import numpy as np

from ..adapters import TokenAdapter
from ..gate import GateContext, Mask, Step
from ..models import Emission, Message, Observation, Verdict, VerdictKind
from ..sampling import Distribution, Sampler, threshold_mask
from .judge import ADMITTED, Judge
from .outcome import LoopEvents, LoopOutcome
from .release import ReleaseBuffer

_Decoder = codecs.getincrementaldecoder("utf-8")
_NO_BANS: frozenset[int] = frozenset()


class TokenLoop(LoopEvents):
    """Drives one generation on a token adapter under the bound metrics."""

    def __init__(
        self,
        adapter: TokenAdapter,
        judge: Judge,
        context: GateContext,
        sampler: Sampler,
        release: ReleaseBuffer,
        *,
        max_tokens: int,
        max_rollbacks: int,
        max_resamples: int,
        refusal: str,
    ) -> None:
        self.adapter = adapter
        self.vocab = adapter.vocab
        self.judge = judge
        self.context = context
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.max_rollbacks = max_rollbacks
        self.max_resamples = max_resamples
        self.temperature = sampler.params.temperature
        self.eos = self.vocab.eos_ids
        self.special = self.vocab.special
        # committed generation
        self.ids: list[int] = []
        self.raw = bytearray()
        self.byte_ends: list[int] = []
        self.text = ""
        self.decoder = _Decoder(errors="replace")
        self.observations: list[Observation] = []
        LoopEvents.__init__(self, release, refusal)
        self.bans: dict[int, set[int]] = {}
        self.rollbacks = 0
        self.steps = 0
        self._scratch = np.empty(self.vocab.size, dtype=np.float32)
        self._work = np.empty(self.vocab.size, dtype=np.float32)

    # -- the loop -----------------------------------------------------------------------
    def run(self, messages: list[Message]) -> Generator[Emission, None, LoopOutcome]:
        self.adapter.begin(messages)
        finish = yield from self._decode()
        return LoopOutcome(
            text=self.out.output,
            finish_reason=finish,
            observations=self.observations,
            emissions=self.out.emissions,
            events=self.events,
            verdicts=self.judge.counts_by_metric(),
            rollbacks=self.rollbacks,
            steps=self.steps,
        )

    def _decode(self) -> Generator[Emission, None, str]:
        while True:
            position = len(self.ids)
            if position >= self.max_tokens:
                finish = yield from self._finish("max_tokens")
                if finish:
                    return finish
                continue
            self.steps += 1
            dist = Distribution(self.adapter.logits(), self.temperature, self._scratch, self._work)
            banned, allowed, min_logit, stop_reason = self._masks(position, dist)
            if stop_reason is not None:
                finish = yield from self._finish(stop_reason)
                if finish:
                    return finish
                continue
            resamples = 0
            while True:
                token = self.sampler.draw(dist, banned, allowed, min_logit, self.eos)
                if token is None:
                    return (yield from self._refuse("no_admissible_token", position))
                if token in self.eos:
                    finish = yield from self._finish("stop")
                    if finish:
                        return finish
                    break
                outcome = yield from self._try(token, position, dist)
                if outcome == "accepted" or outcome == "rolled_back":
                    break
                if outcome.startswith("finish:"):
                    return outcome[7:]
                banned = banned | {token}
                resamples += 1
                if resamples > self.max_resamples:
                    return (yield from self._refuse("max_resamples", position))

    def _masks(
        self, position: int, dist: Distribution
    ) -> tuple[AbstractSet[int], np.ndarray | None, float | None, str | None]:
        if not self.judge.maskers:
            # read only: a resample makes a new set (banned | {token})
            return self.bans.get(position, _NO_BANS), None, None, None
        banned = set(self.bans.get(position, ()))
        allowed: np.ndarray | None = None
        min_logit: float | None = None
        stop_reason = None
        step = self._step(position, "", None, 0.0, dist)
        for metric in self.judge.maskers:
            mask: Mask | None = metric.mask(step)
            if mask is None:
                continue
            if mask.banned is not None and len(mask.banned):
                banned.update(int(i) for i in mask.banned)
            if mask.allowed is not None:
                allowed = mask.allowed if allowed is None else (allowed & mask.allowed)
            if mask.min_logit is not None:
                min_logit = mask.min_logit if min_logit is None else max(min_logit, mask.min_logit)
            if mask.stop_reason and stop_reason is None and self._only_eos(mask, dist):
                stop_reason = mask.stop_reason
        return banned, allowed, min_logit, stop_reason

    def _only_eos(self, mask: Mask, dist: Distribution) -> bool:
        """Whether ``mask`` leaves nothing but end-of-sequence tokens."""
        scaled = dist.scaled
        if mask.min_logit is not None:
            best = dist.best
            if best not in self.eos:
                if scaled[best] >= mask.min_logit:
                    return False
                if mask.allowed is None:
                    return True  # the best non-EOS token is below the threshold
            allowed = threshold_mask(scaled, mask.min_logit, (), mask.allowed)
        elif mask.allowed is not None:
            allowed = mask.allowed
        else:
            return False
        eos_allowed = sum(1 for e in self.eos if e < allowed.size and allowed[e])
        return int(np.count_nonzero(allowed)) <= eos_allowed

    def _step(self, position: int, candidate: str, token: int | None, surprisal: float,
              dist: Distribution | None, *, final: bool = False) -> Step:
        return Step(
            index=position,
            text=self.text + candidate,
            candidate=candidate,
            candidate_id=token,
            released=self.out.released,
            surprisal=surprisal,
            observations=self.observations,
            is_final=final,
            scaled_logits=dist.scaled if dist is not None else None,
            log_z=dist.log_z if dist is not None else 0.0,
        )

    def _try(self, token: int, position: int, dist: Distribution) -> Generator[Emission, None, str]:
        """Judge one candidate. Returns accepted | rejected | rolled_back | finish:<reason>."""
        piece = b"" if token in self.special else self.vocab.token_bytes[token]
        surprisal = dist.surprisal(token)
        # nothing looks at candidates (an empty policy): no step to build, nothing to ask, and
        # nothing can reject the candidate, so the decoder's state need not be saved
        idle = self.judge.idle
        saved = None if idle else self.decoder.getstate()
        candidate = self.decoder.decode(piece) if piece else ""
        step = None if idle else self._step(position, candidate, token, surprisal, dist)
        verdict = self.judge.judge(step) if step is not None else ADMITTED
        kind = verdict.kind
        if kind is not VerdictKind.ADMIT and kind is not VerdictKind.REDACT:
            self.decoder.setstate(saved)  # type: ignore[arg-type]  # not idle: saved above
            for v in verdict.interventions:
                self.judge.count(v)
            if kind is VerdictKind.HALT:
                self._event("halt", position, verdict.decisive)
                return "finish:" + (yield from self._halt())
            if kind is VerdictKind.ROLLBACK and verdict.chars > len(candidate):
                target = len(self.text) + len(candidate) - verdict.chars
                return (yield from self._rollback(target, position, verdict.decisive))
            self._event("reject", position, verdict.decisive, token=token)
            return "rejected"
        for v in verdict.redactions:
            if not self.out.add_redaction(v.start, v.end, v.replacement):
                self._event("gate_error", position, v, problem="redaction reaches released text")
                return "finish:" + (yield from self._halt("gate_error"))
            self.judge.count(v)
            self._event("redact", position, v, start=v.start, end=v.end)
        self._accept(token, piece, candidate, surprisal, step, verdict.interventions)
        emission = self.out.release(self.text, verdict.hold)
        if emission is not None:
            yield emission
        return "accepted"

    def _accept(self, token: int, piece: bytes, candidate: str, surprisal: float, step: Step | None,
                interventions: tuple[Verdict, ...]) -> None:
        self.adapter.accept(token)
        self.ids.append(token)
        self.raw += piece
        self.byte_ends.append(len(self.raw))
        self.text += candidate
        observation = Observation(
            index=len(self.ids) - 1,
            entropy=None,
            token_id=token,
            text=candidate,
            logprob=-surprisal,
            surprisal=surprisal,
            verdicts=list(interventions) if interventions else [],
        )
        self.observations.append(observation)
        self.out.commit_boundary(len(self.text))
        if step is not None:
            for metric in self.judge.committers:
                metric.on_commit(step, observation)

    def _rollback(self, target: int, position: int, verdict) -> Generator[Emission, None, str]:  # type: ignore[no-untyped-def]
        """Retract committed tokens back to at most ``target`` characters."""
        if target < self.out.released:
            self._event("gate_error", position, verdict, problem="rollback reaches released text")
            return "finish:" + (yield from self._halt("gate_error"))
        boundaries = self.out.boundaries
        keep = len(boundaries)
        while keep and boundaries[keep - 1] > target:
            keep -= 1
        k = len(self.ids) - keep
        if k == 0:
            return "rejected"
        self.rollbacks += 1
        first = self.ids[keep]
        self._event("rollback", position, verdict, tokens=k, to_index=keep, banned=first)
        if self.rollbacks > self.max_rollbacks:
            return "finish:" + (yield from self._refuse("max_rollbacks", position))
        self._cut(keep)
        self.bans.setdefault(keep, set()).add(first)
        return "rolled_back"

    def _cut(self, keep: int) -> None:
        k = len(self.ids) - keep
        if k:
            self.adapter.rollback(k)
        del self.ids[keep:]
        del self.byte_ends[keep:]
        del self.raw[self.byte_ends[-1] if self.byte_ends else 0:]
        del self.observations[keep:]
        # bans belong to the prefix they were made under; a new branch starts clean
        for pos in [p for p in self.bans if p > keep]:
            del self.bans[pos]
        self.decoder = _Decoder(errors="replace")
        self.text = self.decoder.decode(bytes(self.raw))
        self.out.truncate(keep)
        for metric in self.judge.rollbackers:
            metric.on_rollback(len(self.text))

    def _finish(self, reason: str) -> Generator[Emission, None, str | None]:
        """End of sequence: a final judgement that resolves every pending hold. Returns the
        finish reason, or None when a final rollback sends the loop back to decoding."""
        saved_decoder, saved_text = self.decoder.getstate(), self.text
        self.text += self.decoder.decode(b"", final=True)
        step = self._step(len(self.ids), "", None, 0.0, None, final=True)
        verdict = self.judge.judge(step)
        for v in verdict.interventions:
            self.judge.count(v)
        kind = verdict.kind
        if kind is VerdictKind.HALT:
            self._event("halt", len(self.ids), verdict.decisive)
            return (yield from self._halt())
        if kind in (VerdictKind.ROLLBACK, VerdictKind.REJECT):
            chars = verdict.chars if kind is VerdictKind.ROLLBACK else 0
            if chars <= 0:
                # nothing to retract: the end itself is inadmissible, keep decoding
                self.decoder.setstate(saved_decoder)
                self.text = saved_text
                self.bans.setdefault(len(self.ids), set()).update(self.eos)
                if len(self.ids) >= self.max_tokens:
                    return (yield from self._refuse("max_tokens", len(self.ids)))
                return None
            result = yield from self._rollback(len(self.text) - chars, len(self.ids), verdict.decisive)
            if result.startswith("finish:"):
                return result[7:]
            if result == "rejected":
                return (yield from self._refuse("unresolvable_final_verdict", len(self.ids)))
            return None
        for v in verdict.redactions:
            if not self.out.add_redaction(v.start, v.end, v.replacement):
                return (yield from self._halt("gate_error"))
        emission = self.out.release(self.text, 0, final=True)
        if emission is not None:
            yield emission
        return reason

    def _halt(self, reason: str = "halted") -> Generator[Emission, None, str]:
        """Stop: whatever is still held back is dropped, never released."""
        return reason
        yield  # pragma: no cover - makes this a generator
