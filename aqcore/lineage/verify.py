"""Offline verification of receipt chains against a keyring.

:func:`verify_records` never raises for bad data: every problem becomes a :class:`Problem`
naming the record (its position in the input, its chain and seq when they can be read) and the
reason. Only unusable input (an unreadable file) raises, elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import LineageError
from .dsse import PAYLOAD_TYPE, Envelope, parse_envelope, verify_signature
from .keys import Keyring
from .merkle import EMPTY_ROOT
from .statement import GENESIS_PREV, Statement, parse_statement
from .store import ChainHead, LineageStore

# An input record: envelope bytes, or (chain it was stored under, envelope bytes).
RecordInput = bytes | tuple[str | None, bytes]


@dataclass(frozen=True)
class Problem:
    """One record that does not verify."""

    index: int
    chain: str | None
    seq: int | None
    code: str
    reason: str

    def __str__(self) -> str:
        where = f"record {self.index}"
        if self.chain is not None:
            where += f" (chain {self.chain}" + (f", seq {self.seq})" if self.seq is not None else ")")
        return f"{where}: {self.reason}"


@dataclass
class ChainState:
    """What the verifier knows of one chain after the records seen so far."""

    seq: int = 0
    digest: str = GENESIS_PREV
    records: int = 0
    by_seq: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq -> (index, digest)


@dataclass
class VerifyReport:
    """The outcome of a verification: ``ok`` when there is no problem."""

    records: int = 0
    chains: dict[str, ChainState] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The problem with the lowest record index."""
        return min(self.problems, key=lambda p: p.index) if self.problems else None

    def summary(self) -> str:
        """One line: all good, or the first bad record and the reason."""
        if self.ok:
            return f"ok: {self.records} receipts in {len(self.chains)} chains verified"
        return f"FAILED ({len(self.problems)} problems); first: {self.first}"


def _matches(conversation: str | None, chain: str) -> bool:
    if conversation is None:
        return True
    return chain == conversation or chain.rsplit(":", 1)[-1] == conversation


class Verifier:
    """Verifies records one at a time, keeping per-chain state; see :func:`verify_records`."""

    def __init__(self, keyring: Keyring, *, conversation: str | None = None) -> None:
        self.keyring = keyring
        self.conversation = conversation
        self.report = VerifyReport()
        self._public: dict[str, Ed25519PublicKey] = {}
        self._index = 0

    def _fail(self, chain: str | None, seq: int | None, code: str, reason: str) -> None:
        self.report.problems.append(Problem(self._index, chain, seq, code, reason))

    def _public_key(self, key_id: str) -> Ed25519PublicKey | None:
        key = self._public.get(key_id)
        if key is None:
            info = self.keyring.get(key_id)
            if info is None:
                return None
            key = self._public[key_id] = info.verifier()
        return key

    def add(self, envelope_bytes: bytes, stored_chain: str | None = None) -> None:
        """Verify the next record; ``stored_chain`` is the chain a store filed it under."""
        try:
            self._add(envelope_bytes, stored_chain)
        finally:
            self._index += 1

    def _add(self, data: bytes, stored_chain: str | None) -> None:
        if stored_chain is not None and not _matches(self.conversation, stored_chain):
            return
        try:
            env = parse_envelope(data)
        except LineageError as exc:
            return self._fail(stored_chain, None, "malformed", str(exc))
        if env.payload_type != PAYLOAD_TYPE:
            return self._fail(
                stored_chain,
                None,
                "payload_type",
                f"payloadType is {env.payload_type!r}, expected {PAYLOAD_TYPE!r}",
            )
        public = self._public_key(env.keyid)
        if public is None:
            return self._fail(
                stored_chain, None, "unknown_key", f"signed by key {env.keyid}, not in the keyring"
            )
        if not verify_signature(env, public):
            return self._fail(
                stored_chain, None, "signature", f"signature does not verify with key {env.keyid}"
            )
        try:
            st = parse_statement(env.payload)
        except LineageError as exc:
            return self._fail(stored_chain, None, "payload", f"signed payload is invalid: {exc}")
        if not _matches(self.conversation, st.chain):
            if stored_chain is None:
                return
            return self._fail(
                stored_chain,
                st.seq,
                "wrong_chain",
                f"receipt of chain {st.chain} stored in chain {stored_chain} (replayed)",
            )
        self._check_signed(env, st, stored_chain, hashlib.sha256(env.payload).hexdigest())

    def _check_signed(self, env: Envelope, st: Statement, stored_chain: str | None, digest: str) -> None:
        chain, seq = st.chain, st.seq
        if stored_chain is not None and stored_chain != chain:
            return self._fail(
                stored_chain,
                seq,
                "wrong_chain",
                f"receipt of chain {chain} stored in chain {stored_chain} (replayed)",
            )
        self.report.records += 1
        state = self.report.chains.setdefault(chain, ChainState())
        if env.keyid != st.key_id:
            return self._fail(
                chain,
                seq,
                "key_mismatch",
                f"envelope keyid {env.keyid} differs from predicate key_id {st.key_id}",
            )
        info = self.keyring.get(env.keyid)
        assert info is not None  # the signature check found it
        if info.status == "revoked":
            return self._fail(chain, seq, "key_revoked", f"key {info.key_id} is revoked")
        if not info.valid_at(st.end_us):
            return self._fail(
                chain,
                seq,
                "key_window",
                f"signed at {st.end_us} µs, outside key {info.key_id}'s validity window "
                f"[{info.not_before_us}, {info.not_after_us})",
            )
        if st.predicate["tree_size"] == 0 and st.root != EMPTY_ROOT.hex():
            return self._fail(chain, seq, "payload", "tree_size is 0 but the root is not the empty-tree hash")
        seen = state.by_seq.get(seq)
        if seen is not None:
            if seen[1] == digest:
                return self._fail(chain, seq, "duplicate", f"duplicate of record {seen[0]}")
            return self._fail(
                chain, seq, "fork", f"fork: record {seen[0]} also has seq {seq} with another payload"
            )
        state.by_seq[seq] = (self._index, digest)
        expected_seq, expected_prev = state.seq + 1, state.digest
        # Judge the next record against this one, so one bad record is reported once.
        state.seq, state.digest = seq, digest
        state.records += 1
        if seq != expected_seq:
            what = "record(s) missing before it" if seq > expected_seq else "out of order"
            return self._fail(chain, seq, "seq", f"seq {seq} where {expected_seq} was expected: {what}")
        if st.prev != expected_prev:
            if seq == 1:
                return self._fail(chain, seq, "genesis", f"first receipt's prev must be {GENESIS_PREV}")
            return self._fail(
                chain,
                seq,
                "prev",
                f"prev {st.prev} is not the sha256 of the previous payload ({expected_prev})",
            )

    def check_heads(self, heads: Mapping[str, ChainHead]) -> None:
        """Compare each chain's last verified record with a trusted head (detects a dropped tail)."""
        for chain, head in heads.items():
            if not _matches(self.conversation, chain):
                continue
            state = self.report.chains.get(chain, ChainState())
            if (state.seq, state.digest) != (head.seq, head.digest):
                # Located after the last record read: that is where the missing tail belongs.
                self._fail(
                    chain,
                    state.seq + 1,
                    "head",
                    f"chain ends at seq {state.seq} but its head is seq {head.seq} ({head.digest})",
                )


def verify_records(
    records: Iterable[RecordInput],
    keyring: Keyring,
    *,
    conversation: str | None = None,
    heads: Mapping[str, ChainHead] | None = None,
) -> VerifyReport:
    """Verify receipts of one or more chains in stored order.

    :param records: envelope bytes, or ``(stored_chain, envelope bytes)`` pairs.
    :param conversation: only chains ``<tenant>:<agent>:<conversation>`` equal to it, or whose
        last part equals it.
    :param heads: trusted chain heads, to detect records dropped from the end.
    """
    verifier = Verifier(keyring, conversation=conversation)
    for item in records:
        if isinstance(item, tuple):
            verifier.add(item[1], item[0])
        else:
            verifier.add(item)
    if heads:
        verifier.check_heads(heads)
    return verifier.report


def verify_store(
    store: LineageStore, keyring: Keyring, *, conversation: str | None = None, prefix: str = ""
) -> VerifyReport:
    """Verify every chain of ``store`` (under ``prefix``), including each chain's head."""
    chains = [c for c in store.chains(prefix) if _matches(conversation, c)]
    records = ((chain, env) for chain in chains for env in store.records(chain))
    heads = {c: h for c in chains if (h := store.head(c)) is not None}
    return verify_records(records, keyring, conversation=conversation, heads=heads)
