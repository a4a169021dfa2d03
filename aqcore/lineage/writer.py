"""The runtime's side of lineage: turn a finished invocation into leaves, seal and append it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LineageError
from ..log import get_logger
from ..loop.outcome import LoopEvent
from .jsonl import JsonlLineageStore
from .keys import KEYRING_FILE, Signer, default_key_dir, load_signer, now_us
from .leaves import micro
from .pending import PendingReceipt, PendingReceipts
from .receipt import ReceiptBuilder, SealedReceipt
from .statement import chain_key
from .store import LineageStore

log = get_logger("aq.lineage")

if TYPE_CHECKING:
    from ..models import GenerationResult
    from ..plugins import AqPluginManager


def _event_fields(event: Any) -> dict[str, Any]:
    """Leaf fields of a loop event (``kind``, ``index``, ``metric``, ``reason``, ``detail``)."""
    fields: dict[str, Any] = {"at": int(event.index)}
    if getattr(event, "metric", ""):
        fields["metric"] = str(event.metric)
    if getattr(event, "reason", ""):
        fields["reason"] = str(event.reason)
    for key, value in (getattr(event, "detail", None) or {}).items():
        name = f"d_{key}"
        if isinstance(value, float):
            fields[name + "_u"] = micro(value)  # integers only: millionths
        elif value is None or isinstance(value, (bool, int, str)):
            fields[name] = value
        else:
            fields[name] = str(value)
    return fields


class LineageWriter:
    """Seals each invocation's receipt with ``signer`` and appends it to ``store``."""

    def __init__(
        self,
        store: LineageStore,
        signer: Signer,
        *,
        key_source: tuple[Any, Any] | None = None,
        retries: int = 5,
        pending_dir: str | os.PathLike[str] | None = None,
        leaves_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.store = store
        self.leaves_dir = Path(leaves_dir) if leaves_dir is not None else None
        self.pending = PendingReceipts(Path(pending_dir)) if pending_dir is not None else None
        self.signer = signer
        self.retries = retries
        self._key_source = key_source  # (key, keyring) to reload after a rotation
        self._stamp = self._keyring_stamp()

    @classmethod
    def open(
        cls,
        plugins: AqPluginManager | None,
        url: str,
        *,
        key: str | os.PathLike[str] | None = None,
        keyring: str | os.PathLike[str] | None = None,
        pending_dir: str | os.PathLike[str] | None = None,
        leaves_dir: str | os.PathLike[str] | None = None,
    ) -> LineageWriter:
        """A writer for the store at ``url`` signing with ``key`` (a key directory or a ``.pem``
        file; default ``$AQ_KEY_DIR`` or ``.aq/keys``) checked against ``keyring``."""
        signer = load_signer(key, keyring=keyring)
        if "://" not in url or url.startswith("file://") or plugins is None:
            store: LineageStore = JsonlLineageStore(url)
        else:
            store = plugins.open_lineage_store(url)
        return cls(store, signer, key_source=(key, keyring), pending_dir=pending_dir, leaves_dir=leaves_dir)

    def _keyring_stamp(self) -> int | None:
        if self._key_source is None:
            return None
        key, keyring = self._key_source
        path = Path(keyring) if keyring is not None else (Path(key) if key is not None else default_key_dir())
        if path.is_dir():
            path = path / KEYRING_FILE
        elif keyring is None:
            path = path.parent / KEYRING_FILE
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return None

    def _current_signer(self, at_us: int) -> Signer:
        """The signer to use now; reloaded when the keyring changed (``aq keys rotate`` in
        another process) or the key's window closed, if the key came from a key directory."""
        if self._key_source is None:
            return self.signer
        stamp = self._keyring_stamp()
        info = self.signer.info
        if stamp == self._stamp and info.status == "active" and info.valid_at(at_us):
            return self.signer
        key, keyring = self._key_source
        if key is None or Path(key).is_dir():
            self.signer = load_signer(key, keyring=keyring, at_us=at_us)
        self._stamp = stamp
        return self.signer

    def build(
        self,
        result: GenerationResult,
        events: Iterable[Any] = (),
        *,
        started_us: int | None = None,
        t_us: int | None = None,
    ) -> ReceiptBuilder:
        """The leaves of a finished invocation: ``start``, ``degraded`` (if partial), each
        observation preceded by the loop events at its position, ``finish``."""
        end = now_us() if t_us is None else t_us
        start = end if started_us is None else started_us
        builder = ReceiptBuilder.for_scope(result.scope, start_us=start)
        builder.add_event("start", start, adapter=result.adapter, model=result.model)
        if result.state_status == "partial":
            builder.add_event("degraded", start, reason=result.degraded_reason or "")
        pending = sorted(events, key=lambda e: int(e.index))
        j = 0
        for obs in result.observations:
            while j < len(pending) and int(pending[j].index) <= obs.index:
                builder.add_event(pending[j].kind, end, **_event_fields(pending[j]))
                j += 1
            builder.add_observation(obs, end)
        for event in pending[j:]:
            builder.add_event(event.kind, end, **_event_fields(event))
        builder.add_event("finish", end, reason=result.finish_reason, tokens=result.tokens)
        return builder

    def record(
        self, result: GenerationResult, events: Iterable[Any] = (), *, started_us: int | None = None
    ) -> dict[str, Any]:
        """Seal and append the receipt of ``result``; return its summary (id, root, seq, prev...).

        When the store does not take it and a pending directory is set, the receipt is kept
        there and sealed, in order, before the chain's next receipt; the summary then says
        ``"status": "pending"``. Without a pending directory a LineageError is raised.
        """
        end = now_us()
        chain = chain_key(result.scope.tenant, result.scope.agent, result.scope.conversation)
        if self.pending is None:
            return self.record_sealed(result, events, started_us=started_us, end_us=end).summary()
        item = PendingReceipt(
            result=result,
            events=[LoopEvent(e.kind, int(e.index), e.metric, e.reason, dict(e.detail)) for e in events],
            started_us=end if started_us is None else started_us,
            end_us=end,
        )
        try:
            self.pending.drain(chain, self._seal_pending)
            return self._seal_pending(item).summary()
        except LineageError as exc:
            self.pending.add(chain, item)
            log.warning("receipt kept locally until the lineage store answers", chain=chain, error=str(exc))
            return {"id": result.scope.invocation, "chain": chain, "status": "pending", "reason": str(exc)}

    def _seal_pending(self, item: PendingReceipt) -> SealedReceipt:
        return self.record_sealed(item.result, item.events, started_us=item.started_us, end_us=item.end_us)

    def flush(self, chain: str) -> int:
        """Seal the pending receipts of ``chain``; returns how many were appended."""
        return self.pending.drain(chain, self._seal_pending) if self.pending is not None else 0

    def record_sealed(
        self,
        result: GenerationResult,
        events: Iterable[Any] = (),
        *,
        started_us: int | None = None,
        end_us: int | None = None,
    ) -> SealedReceipt:
        """Seal and append now (no pending path), returning the whole sealed receipt."""
        end = now_us() if end_us is None else end_us
        builder = self.build(result, events, started_us=started_us, t_us=end)
        signer = self._current_signer(end)
        try:
            sealed = builder.seal_and_append(
                self.store, signer=signer, retries=self.retries, result=result, end_us=end
            )
        except LineageError as exc:
            raise LineageError(f"receipt of invocation {result.scope.invocation} not stored: {exc}") from None
        if self.leaves_dir is not None:
            self._keep_leaves(result.scope.invocation, builder.leaves)
        return sealed

    def leaves_path(self, invocation: str) -> Path | None:
        """Where the leaves of ``invocation`` are kept (for ``aq lineage prove``), if they are."""
        return self.leaves_dir / f"{invocation}.leaves.jsonl" if self.leaves_dir is not None else None

    def _keep_leaves(self, invocation: str, leaves: list[bytes]) -> None:
        path = self.leaves_path(invocation)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(leaf + b"\n" for leaf in leaves))
        os.replace(tmp, path)

    def close(self) -> None:
        self.store.close()
