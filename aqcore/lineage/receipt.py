"""Building one invocation's receipt: leaves during generation, a signed envelope at the end."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LineageError
from .dsse import PAYLOAD_TYPE
from .keys import Signer, now_us
from .leaves import event_record, leaf_bytes, leaf_hash, micro, record_from_observation
from .merkle import root as merkle_root
from .statement import GENESIS_PREV, build_statement, chain_key, statement_bytes

if TYPE_CHECKING:
    from ..models import GenerationResult, Observation, Scope
    from .store import ChainHead, LineageStore


@dataclass(frozen=True)
class SealedReceipt:
    """A signed receipt and what a store and the next receipt need from it."""

    envelope: bytes
    payload: bytes
    digest: str  # sha256 hex of payload: the next receipt's ``prev``
    root: str
    chain: str
    invocation: str
    seq: int
    prev: str
    key_id: str
    statement: dict[str, Any] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The receipt as the JSON output of an invocation shows it."""
        return {
            "id": self.invocation,
            "chain": self.chain,
            "root": self.root,
            "seq": self.seq,
            "prev": self.prev,
            "digest": self.digest,
            "key_id": self.key_id,
        }


def next_link(head: ChainHead | None) -> tuple[int, str]:
    """``(seq, prev)`` of the receipt that follows ``head`` (genesis for an empty chain)."""
    return (1, GENESIS_PREV) if head is None else (head.seq + 1, head.digest)


class ReceiptBuilder:
    """Collects the leaves of one invocation and seals them into a receipt.

    ``add_leaf`` costs one canonical serialisation and one sha256; nothing else happens per
    token. Leaf bytes are kept (``keep_leaves``) so inclusion proofs can be produced later.
    """

    def __init__(
        self,
        *,
        tenant: str,
        agent: str,
        conversation: str,
        invocation: str,
        start_us: int | None = None,
        keep_leaves: bool = True,
    ) -> None:
        self.tenant = tenant
        self.agent = agent
        self.conversation = conversation
        self.invocation = invocation
        self.start_us = now_us() if start_us is None else start_us
        self.keep_leaves = keep_leaves
        self.leaf_hashes: list[bytes] = []
        self.leaves: list[bytes] = []

    @classmethod
    def for_scope(
        cls, scope: Scope, *, start_us: int | None = None, keep_leaves: bool = True
    ) -> ReceiptBuilder:
        """A builder for the invocation of ``scope``."""
        return cls(
            tenant=scope.tenant,
            agent=scope.agent,
            conversation=scope.conversation,
            invocation=scope.invocation,
            start_us=start_us,
            keep_leaves=keep_leaves,
        )

    @property
    def chain(self) -> str:
        return chain_key(self.tenant, self.agent, self.conversation)

    @property
    def tree_size(self) -> int:
        return len(self.leaf_hashes)

    def add_leaf(self, record: Mapping[str, Any]) -> bytes:
        """Add one leaf record (integers only); return its leaf hash (32 bytes)."""
        data = leaf_bytes(record)
        digest = leaf_hash(data)
        self.leaf_hashes.append(digest)
        if self.keep_leaves:
            self.leaves.append(data)
        return digest

    def add_observation(self, obs: Observation, t_us: int | None = None) -> bytes:
        """Add the leaf of an :class:`aqcore.models.Observation`."""
        return self.add_leaf(record_from_observation(obs, now_us() if t_us is None else t_us))

    def add_event(self, event: str, t_us: int | None = None, **fields: int | str | bool | None) -> bytes:
        """Add a lifecycle event leaf (``start``, ``degraded``, ``rollback``, ``finish`` ...)."""
        return self.add_leaf(event_record(event, t_us=now_us() if t_us is None else t_us, **fields))

    def root(self) -> bytes:
        """The RFC 9162 Merkle root over the leaves so far."""
        return merkle_root(self.leaf_hashes)

    def seal(
        self,
        *,
        signer: Signer,
        seq: int,
        prev: str,
        text: str,
        finish_reason: str,
        model: str = "",
        model_digest: str = "",
        adapter: str = "",
        policy_name: str = "",
        policy_digest: str = "",
        state_status: str = "full",
        confidence: str = "normal",
        degraded_reason: str | None = None,
        entropy_spent_nats: Mapping[str, float] | None = None,
        verdicts: Mapping[str, Mapping[str, int]] | None = None,
        end_us: int | None = None,
    ) -> SealedReceipt:
        """Sign the receipt. ``entropy_spent_nats`` is converted to integer micro-nats.

        :raises LineageError: if a field is invalid or the signer's key is not active and valid
            at ``end_us`` (the signing time recorded in the receipt).
        """
        end = now_us() if end_us is None else end_us
        info = signer.info
        if info.status != "active" or not info.valid_at(end):
            raise LineageError(
                f"key {info.key_id} cannot sign at {end} µs (status {info.status}, "
                f"valid {info.not_before_us}..{info.not_after_us}); rotate keys"
            )
        root_hex = self.root().hex()
        predicate = {
            "tenant": self.tenant,
            "agent": self.agent,
            "conversation": self.conversation,
            "invocation": self.invocation,
            "seq": seq,
            "prev": prev,
            "tree_size": self.tree_size,
            "model": model,
            "model_digest": model_digest,
            "adapter": adapter,
            "policy_name": policy_name,
            "policy_digest": policy_digest,
            "key_id": info.key_id,
            "state_status": state_status,
            "confidence": confidence,
            "degraded_reason": degraded_reason,
            "entropy_spent": {k: micro(v) for k, v in (entropy_spent_nats or {}).items()},
            "verdicts": {m: dict(kinds) for m, kinds in (verdicts or {}).items()},
            "finish_reason": finish_reason,
            "start_us": self.start_us,
            "end_us": end,
        }
        statement = build_statement(root_hex, text, predicate)
        payload = statement_bytes(statement)
        envelope = signer.sign(payload, PAYLOAD_TYPE).to_bytes()
        return SealedReceipt(
            envelope=envelope,
            payload=payload,
            digest=hashlib.sha256(payload).hexdigest(),
            root=root_hex,
            chain=self.chain,
            invocation=self.invocation,
            seq=seq,
            prev=prev,
            key_id=info.key_id,
            statement=statement,
        )

    def seal_result(
        self, result: GenerationResult, *, signer: Signer, seq: int, prev: str, end_us: int | None = None
    ) -> SealedReceipt:
        """Seal with the fields of an invocation's :class:`aqcore.models.GenerationResult`."""
        return self.seal(
            signer=signer,
            seq=seq,
            prev=prev,
            text=result.text,
            finish_reason=result.finish_reason,
            model=result.model,
            model_digest=result.model_digest,
            adapter=result.adapter,
            policy_name=result.policy_name,
            policy_digest=result.policy_digest,
            state_status=result.state_status,
            confidence=result.confidence,
            degraded_reason=result.degraded_reason,
            entropy_spent_nats=result.entropy_spent,
            verdicts=result.verdicts,
            end_us=end_us,
        )

    def seal_and_append(
        self,
        store: LineageStore,
        *,
        signer: Signer,
        retries: int = 5,
        result: GenerationResult | None = None,
        **fields: Any,
    ) -> SealedReceipt:
        """Seal against the store's current head and append; re-seal if another writer moved the
        head in between (at most ``retries`` times). Pass ``result`` or :meth:`seal`'s fields.

        :raises LineageError: if the append keeps failing.
        """
        for attempt in range(retries + 1):
            head = store.head(self.chain)
            seq, prev = next_link(head)
            if result is not None:
                sealed = self.seal_result(
                    result, signer=signer, seq=seq, prev=prev, end_us=fields.get("end_us")
                )
            else:
                sealed = self.seal(signer=signer, seq=seq, prev=prev, **fields)
            try:
                store.append(self.chain, seq, prev, sealed.digest, sealed.envelope)
                return sealed
            except LineageError:
                if attempt == retries or store.head(self.chain) == head:
                    raise  # not a race with another writer, or out of retries
        raise AssertionError("unreachable")
