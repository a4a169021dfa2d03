"""One LMDB environment per directory and process, shared by the state backend and the lineage
store that name it.

LMDB forbids opening the same environment twice in one process (closing one handle would drop
the other's file locks) and using a handle across ``fork()``. So handles are pooled by real
path, opened lazily on first use, and re-opened in a child process. The map grows by doubling
when a write finds it full; another process's growth is adopted when LMDB reports it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import lmdb

from aqcore.errors import AqError, UsageError

from .options import LmdbOptions

T = TypeVar("T")

DATABASES = (b"state", b"records", b"heads")
# A document larger than the disk stops growth long before this many doublings.
_MAX_GROWTHS = 40
_pool: dict[str, SharedEnvironment] = {}
_pool_lock = threading.Lock()


class _ResizeGate:
    """Many transactions at once, or one map resize with none running (``set_mapsize`` needs no
    transaction open in the process)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class SharedEnvironment:
    """A lazily opened, fork-aware LMDB environment with named databases ``state``, ``records``
    and ``heads``."""

    def __init__(self, options: LmdbOptions) -> None:
        self.options = options
        self.path = options.path
        self._map_size = options.map_size
        self._users = 0
        self._pid = -1
        self._env: Any = None
        self._dbs: dict[bytes, Any] = {}
        self._gate = _ResizeGate()
        self._open_lock = threading.Lock()

    # -- opening ------------------------------------------------------------------------
    def _environment(self, error: type[AqError]) -> Any:
        if self._env is not None and self._pid == os.getpid():
            return self._env
        with self._open_lock:
            pid = os.getpid()
            if self._env is not None and self._pid != pid:
                self._drop_inherited()
                self._gate = _ResizeGate()  # its lock may have been held by a parent thread
            if self._env is None:
                self._open(pid, error)
            return self._env

    def _drop_inherited(self) -> None:
        # The child never transacts on the parent's handle. Closing it only unmaps memory and
        # closes descriptors: the parent's fcntl locks are not the child's, LMDB clears only the
        # reader slots of the closing pid, and no spare read transaction (max_spare_txns=0) holds
        # a parent slot that an abort here could free. py-lmdb refuses to open the same files
        # again until this handle is closed.
        try:
            self._env.close()
        except lmdb.Error:
            pass
        self._env = None
        self._dbs = {}

    def _open(self, pid: int, error: type[AqError]) -> None:
        try:
            os.makedirs(self.path, exist_ok=True)
            env = lmdb.open(
                self.path,
                map_size=self._map_size,
                subdir=True,
                max_dbs=len(DATABASES),
                sync=self.options.sync,
                metasync=self.options.sync,
                lock=True,
                readahead=False,
                meminit=False,
                max_spare_txns=0,
            )
            # Reader slots of processes that died mid-transaction pin old pages; free them.
            env.reader_check()
            with env.begin(write=True) as txn:
                dbs = {name: env.open_db(name, txn=txn) for name in DATABASES}
        except (lmdb.Error, OSError) as exc:
            raise error(f"cannot open LMDB environment at {self.path}: {exc}") from exc
        self._env, self._dbs, self._pid = env, dbs, pid

    # -- transactions -------------------------------------------------------------------
    def run(
        self, fn: Callable[[Any, dict[bytes, Any]], T], *, write: bool, error: type[AqError], action: str
    ) -> T:
        """Run ``fn(txn, dbs)`` in one transaction (committed if ``write`` and ``fn`` returns).

        LMDB failures become ``error`` naming the path and ``action``; exceptions raised by ``fn``
        itself abort the transaction and propagate unchanged.
        """
        for _ in range(_MAX_GROWTHS):
            env = self._environment(error)
            seen = self._map_size
            try:
                with self._gate.shared(), env.begin(write=write) as txn:
                    return fn(txn, self._dbs)
            except lmdb.MapFullError:
                self._grow(env, seen, error)
            except lmdb.MapResizedError:
                self._adopt_size(env, error)
            except lmdb.ReadersFullError as exc:
                try:
                    cleared = env.reader_check()
                except lmdb.Error:
                    cleared = 0
                if not cleared:
                    raise error(
                        f"LMDB at {self.path}: {action}: every reader slot is in use ({exc})"
                    ) from exc
            except lmdb.Error as exc:
                raise error(f"LMDB at {self.path}: {action} failed: {type(exc).__name__}: {exc}") from exc
        raise error(
            f"LMDB at {self.path}: {action}: the map could not grow enough after {_MAX_GROWTHS} tries"
        )

    def _grow(self, env: Any, seen: int, error: type[AqError]) -> None:
        with self._gate.exclusive():
            if self._map_size > seen:
                return  # another thread grew it while this one waited
            try:
                env.set_mapsize(max(env.info()["map_size"], seen) * 2)
                self._map_size = env.info()["map_size"]
            except lmdb.Error as exc:
                raise error(
                    f"LMDB at {self.path}: cannot grow the map beyond {self._map_size} bytes: {exc}"
                ) from exc

    def _adopt_size(self, env: Any, error: type[AqError]) -> None:
        with self._gate.exclusive():
            try:
                env.set_mapsize(0)  # 0: take the size another process set
                self._map_size = env.info()["map_size"]
            except lmdb.Error as exc:
                raise error(
                    f"LMDB at {self.path}: cannot adopt the map size set by another process: {exc}"
                ) from exc

    @property
    def map_size(self) -> int:
        """The map size this process uses now (bytes)."""
        return self._map_size

    # -- sharing ------------------------------------------------------------------------
    def _release(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            self._env.close()
        self._env = None
        self._dbs = {}


def acquire(options: LmdbOptions) -> SharedEnvironment:
    """The process's environment for ``options.path``, created if needed; pair with :func:`release`."""
    key = os.path.realpath(options.path)
    with _pool_lock:
        shared = _pool.get(key)
        if shared is None:
            shared = _pool[key] = SharedEnvironment(options)
        elif shared.options.sync != options.sync:
            raise UsageError(
                f"LMDB environment {options.path} is already open in this process with "
                f"sync={str(shared.options.sync).lower()}; one process uses one setting per environment"
            )
        shared._users += 1
        return shared


def release(shared: SharedEnvironment) -> None:
    """Drop one user of ``shared``; the last one closes the environment."""
    key = os.path.realpath(shared.path)
    with _pool_lock:
        shared._users -= 1
        if shared._users > 0:
            return
        if _pool.get(key) is shared:
            del _pool[key]
        shared._release()
