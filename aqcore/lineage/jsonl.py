"""A lineage store in one JSON-lines file: ``file:///abs/path.jsonl`` or a plain path.

Each line is the canonical JSON object ``{"chain", "digest", "envelope", "prev", "seq"}`` with
the envelope as a string. Appends take an exclusive ``fcntl`` lock on the file, re-read what
other processes appended since, check the chain head, write one line and fsync before
returning, so workers on one host share the file safely. Not for network file systems whose
locks are unreliable.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import LineageError, UsageError
from ..state.keys import check_chain
from .canonical import canonical_bytes
from .keys import Keyring
from .statement import GENESIS_PREV
from .store import ChainHead

log = logging.getLogger(__name__)
_HEX64 = re.compile(r"[0-9a-f]{64}")
def path_from_url(url: str) -> Path:
    """The file path of ``file:///abs/path`` or of a plain path.

    :raises UsageError: for another scheme or a ``file:`` URL with a host or a relative path.
    """
    if "://" not in url and not url.startswith("file:"):
        return Path(url).expanduser().absolute()
    parsed = urlparse(url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
        raise UsageError(f"not a file lineage store URL: {url!r} (expected file:///absolute/path.jsonl)")
    return Path(unquote(parsed.path))


class JsonlLineageStore:
    """A :class:`aqcore.lineage.store.LineageStore` in a JSON-lines file."""

    def __init__(self, url: str) -> None:
        self.path = path_from_url(url)
        self.url = url
        self._heads: dict[str, ChainHead] = {}
        self._offset = 0  # bytes of the file already folded into _heads
        self._ident: tuple[int, int] | None = None
        self._lines = 0

    def __repr__(self) -> str:
        return f"JsonlLineageStore({self.url!r})"

    # -- reading -------------------------------------------------------------------------

    def _refresh(self, fd: int) -> None:
        """Fold lines other writers appended since the last look into the head index."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._ident or st.st_size < self._offset:
            self._heads, self._offset, self._lines, self._ident = {}, 0, 0, (st.st_dev, st.st_ino)
        if st.st_size == self._offset:
            return
        data = os.pread(fd, st.st_size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # a line without its newline is not complete yet
        for line in data[:end].splitlines():
            self._lines += 1
            chain, seq, digest = self._parse_line(line)
            self._heads[chain] = ChainHead(seq, digest)
        self._offset += end

    def _parse_line(self, line: bytes) -> tuple[str, int, str]:
        try:
            obj = json.loads(line)
            return str(obj["chain"]), int(obj["seq"]), str(obj["digest"])
        except (ValueError, KeyError, TypeError):
            raise LineageError(
                f"lineage store {self.path} line {self._lines} is corrupt; "
                f"run 'aq lineage verify {self.path}'"
            ) from None

    def _open_read(self) -> int | None:
        try:
            return os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LineageError(f"cannot read lineage store {self.path}: {exc.strerror}") from None

    def head(self, chain: str) -> ChainHead | None:
        """The chain's head, or None for an empty chain."""
        check_chain(chain)
        fd = self._open_read()
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._refresh(fd)
        finally:
            os.close(fd)
        return self._heads.get(chain)

    def chains(self, prefix: str = "") -> Iterator[str]:
        """Every chain whose key starts with ``prefix``, sorted."""
        fd = self._open_read()
        if fd is None:
            return iter(())
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._refresh(fd)
        finally:
            os.close(fd)
        return iter(sorted(c for c in self._heads if c.startswith(prefix)))

    def records(self, chain: str) -> Iterator[bytes]:
        """Every envelope of ``chain`` in stored order."""
        check_chain(chain)
        fd = self._open_read()
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        for number, line in enumerate(data[: data.rfind(b"\n") + 1].splitlines()):
            try:
                obj = json.loads(line)
                if obj["chain"] == chain:
                    yield str(obj["envelope"]).encode("utf-8")
            except (ValueError, KeyError, TypeError):
                raise LineageError(
                    f"lineage store {self.path} line {number} is corrupt; run 'aq lineage verify {self.path}'"
                ) from None

    # -- writing -------------------------------------------------------------------------

    def append(self, chain: str, seq: int, prev: str, digest: str, envelope: bytes) -> None:
        """Append atomically if ``(seq - 1, prev)`` is the chain's head (genesis for seq 1).

        :raises UsageError: on a malformed chain or argument.
        :raises LineageError: on a head mismatch (nothing is written) or an I/O failure.
        """
        check_chain(chain)
        if type(seq) is not int or seq < 1:
            raise UsageError(f"seq must be an integer >= 1 (got {seq!r}) for chain {chain}")
        for name, value in (("prev", prev), ("digest", digest)):
            if not isinstance(value, str) or not _HEX64.fullmatch(value):
                raise UsageError(f"{name} must be 64 lower-case hex digits for chain {chain} seq {seq}")
        try:
            text = bytes(envelope).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"envelope for chain {chain} seq {seq} is not UTF-8 JSON") from None
        if not text:
            raise UsageError(f"envelope for chain {chain} seq {seq} is empty")
        line = (
            canonical_bytes({"chain": chain, "seq": seq, "prev": prev, "digest": digest, "envelope": text})
            + b"\n"
        )
        created = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise LineageError(f"cannot open lineage store {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._drop_torn_tail(fd)
            self._refresh(fd)
            head = self._heads.get(chain)
            expected = (0, GENESIS_PREV) if head is None else (head.seq, head.digest)
            if (seq - 1, prev) != expected:
                raise LineageError(
                    f"chain {chain} head is seq {expected[0]} ({expected[1]}); "
                    f"refusing record seq {seq} with prev {prev}"
                )
            os.write(fd, line)
            os.fsync(fd)
            self._heads[chain] = ChainHead(seq, digest)
            self._offset += len(line)
            self._lines += 1
        except OSError as exc:
            raise LineageError(f"cannot append to lineage store {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)  # releases the lock
        if created:
            self._fsync_dir()

    def _drop_torn_tail(self, fd: int) -> None:
        """Cut a last line left without its newline by a writer that died mid-write.

        Such a record was never acknowledged (append returns only after the full line is
        fsynced), so removing it loses nothing that a caller was told is stored.
        """
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        tail_start = size - min(size, 1 << 20)
        chunk = os.pread(fd, size - tail_start, tail_start)
        if b"\n" in chunk:
            cut = tail_start + chunk.rfind(b"\n") + 1
        elif tail_start == 0:
            cut = 0
        else:
            raise LineageError(
                f"lineage store {self.path} ends in over 1 MiB without a newline; it is corrupt"
            )
        log.warning("lineage store %s: dropping %d bytes of an unfinished record", self.path, size - cut)
        os.ftruncate(fd, cut)

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def export(
        self, out: str | os.PathLike[str], keyring: Keyring, *, conversation: str | None = None
    ) -> int:
        """Write the export file (keyring, heads, envelopes); see :func:`.export.export_store`."""
        from .export import export_store

        return export_store(self, out, keyring, conversation=conversation)

    def close(self) -> None:
        """Nothing is held open between calls."""
