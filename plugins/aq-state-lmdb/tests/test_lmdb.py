"""LMDB-specific behaviour: URL options, map growth, fork, several processes, errors, discovery."""

from __future__ import annotations

import importlib.metadata
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest
from aq_state_lmdb.options import DEFAULT_MAP_SIZE, LmdbOptions, parse_url
from aq_state_lmdb.plugin import open_lineage_store, open_state_backend

from aqcore import hookspecs
from aqcore.errors import LineageError, StateUnavailable, UsageError
from aqcore.state.backend import Versioned

KEY = "conversation/acme:bot:c1"


# -- URL ----------------------------------------------------------------------------------------
def test_url_defaults() -> None:
    assert parse_url("lmdb:///var/lib/aq") == LmdbOptions("/var/lib/aq", DEFAULT_MAP_SIZE, True)


@pytest.mark.parametrize(
    ("query", "map_size", "sync"),
    [
        ("map_size=1048576", 2**20, True),
        ("map_size=64MiB&sync=false", 64 * 2**20, False),
        ("map_size=2g", 2 * 2**30, True),
        ("sync=true", DEFAULT_MAP_SIZE, True),
        ("sync=0", DEFAULT_MAP_SIZE, False),
    ],
)
def test_url_options(query: str, map_size: int, sync: bool) -> None:
    assert parse_url(f"lmdb:///srv/aq?{query}") == LmdbOptions("/srv/aq", map_size, sync)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("lmdb://relative/dir", "absolute"),
        ("lmdb:relative", "absolute"),
        ("redis:///x", "not an lmdb"),
        ("lmdb:///x?map_size=lots", "not a size"),
        ("lmdb:///x?map_size=1024", "minimum"),
        ("lmdb:///x?sync=maybe", "sync must be true or false"),
        ("lmdb:///x?sync=true&sync=false", "2 times"),
        ("lmdb:///x?mapsize=1", "unknown option"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_url(url)


# -- environment --------------------------------------------------------------------------------
def test_opened_lazily_and_shared_by_state_and_lineage(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path}/env?sync=false"
    state = open_state_backend(url)
    assert not (tmp_path / "env").exists()  # nothing is opened before first use
    lineage = open_lineage_store(url)
    assert state._shared is lineage._shared  # one environment per path and process
    assert state.compare_and_set(KEY, 0, {"n": 1})
    lineage.append("acme:bot:c1", 1, "", "a" * 64, b"{}")
    state.close()
    # the lineage store still works after its neighbour closed
    assert lineage.head("acme:bot:c1").seq == 1
    lineage.close()
    with pytest.raises(StateUnavailable, match="closed"):
        state.load(KEY)
    with pytest.raises(LineageError, match="closed"):
        lineage.head("acme:bot:c1")
    assert sorted(p.name for p in (tmp_path / "env").iterdir()) == ["data.mdb", "lock.mdb"]


def test_conflicting_sync_in_one_process_is_refused(tmp_path: Path) -> None:
    first = open_state_backend(f"lmdb://{tmp_path}")
    try:
        with pytest.raises(UsageError, match="sync=true"):
            open_lineage_store(f"lmdb://{tmp_path}?sync=false")
    finally:
        first.close()


def test_map_grows_when_full(tmp_path: Path) -> None:
    backend = open_state_backend(f"lmdb://{tmp_path}?map_size=64KiB&sync=false")
    try:
        start = backend._shared.map_size
        blob = "x" * 4000
        for i in range(200):  # ~800 KB of documents in a 64 KiB map
            assert backend.compare_and_set(f"conversation/acme:bot:c{i}", 0, {"blob": blob, "i": i})
        # one document larger than the whole initial map
        assert backend.compare_and_set(KEY + "big", 0, {"blob": "y" * 300_000})
        assert backend._shared.map_size >= 8 * start
        assert backend.load("conversation/acme:bot:c199") == Versioned(1, {"blob": blob, "i": 199})
        assert len(backend.load(KEY + "big").doc["blob"]) == 300_000
    finally:
        backend.close()


def _grow_in_child(url: str) -> None:
    backend = open_state_backend(url)
    for i in range(100):
        backend.compare_and_set(f"conversation/acme:child:c{i}", 0, {"blob": "z" * 8000})
    backend.close()


def test_map_growth_by_another_process_is_adopted(tmp_path: Path) -> None:
    url = f"lmdb://{tmp_path}?map_size=64KiB&sync=false"
    backend = open_state_backend(url)
    try:
        assert backend.compare_and_set(KEY, 0, {"n": 1})  # the parent has the small map open
        child = multiprocessing.get_context("spawn").Process(target=_grow_in_child, args=(url,))
        child.start()
        child.join(120)
        assert child.exitcode == 0
        # the data now lies beyond the parent's map: LMDB reports the resize, the store adopts it
        assert backend.load("conversation/acme:child:c99") == Versioned(1, {"blob": "z" * 8000})
        assert backend.compare_and_set(KEY, 1, {"n": 2})
        assert len(list(backend.keys("conversation/acme:child:"))) == 100
    finally:
        backend.close()


def test_usable_after_fork(tmp_path: Path) -> None:
    backend = open_state_backend(f"lmdb://{tmp_path}?sync=false")
    lineage = open_lineage_store(f"lmdb://{tmp_path}?sync=false")
    try:
        assert backend.compare_and_set(KEY, 0, {"by": "parent"})  # opened before the fork
        parent_env = backend._shared._env
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: must re-open instead of using the parent's handle
            code = 1
            try:
                ok = backend.load(KEY) == Versioned(1, {"by": "parent"})
                ok = ok and backend._shared._env is not parent_env
                ok = ok and backend.compare_and_set(KEY, 1, {"by": "child"})
                lineage.append("acme:bot:c1", 1, "", "b" * 64, b"child")
                code = 0 if ok else 1
            finally:
                os.write(write, bytes([code]))
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        assert os.read(read, 1) == b"\x00" and os.waitstatus_to_exitcode(status) == 0
        os.close(read)
        assert backend._shared._env is parent_env  # the parent keeps its own handle
        assert backend.load(KEY) == Versioned(2, {"by": "child"})
        assert list(lineage.records("acme:bot:c1")) == [b"child"]
        assert backend.compare_and_set(KEY, 2, {"by": "parent again"})
    finally:
        lineage.close()
        backend.close()


def _reader_pids(table: str) -> set[int]:
    return {
        int(line.split()[0]) for line in table.splitlines()[1:] if line.split() and line.split()[0].isdigit()
    }


def test_stale_readers_are_cleared_on_open(tmp_path: Path) -> None:
    # A process killed inside a read transaction leaves its reader slot behind, as long as some
    # other process keeps the environment open (the last one out resets the lock file).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import lmdb, sys\nenv = lmdb.open({str(tmp_path)!r}, max_dbs=3)\nprint('ready', flush=True)\n"
            "sys.stdin.readline()\nprint(repr(env.readers()), flush=True)\nsys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        dead = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import os, lmdb\nenv = lmdb.open({str(tmp_path)!r}, max_dbs=3)\ntxn = env.begin()\n"
                "print(os.getpid(), flush=True)\nos.kill(os.getpid(), 9)\n",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        dead_pid = int(dead.stdout.strip())
        holder.stdin.write("readers\n")
        holder.stdin.flush()
        assert dead_pid in _reader_pids(eval(holder.stdout.readline()))  # the stale slot is there
        backend = open_state_backend(f"lmdb://{tmp_path}")
        try:
            assert backend.load(KEY) is None
            assert dead_pid not in _reader_pids(backend._shared._env.readers())
        finally:
            backend.close()
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_durable_setting_is_passed_to_lmdb(tmp_path: Path) -> None:
    durable = open_state_backend(f"lmdb://{tmp_path}/a")
    fast = open_state_backend(f"lmdb://{tmp_path}/b?sync=false")
    try:
        durable.load(KEY)
        fast.load(KEY)
        assert durable._shared._env.flags()["sync"] is True
        assert fast._shared._env.flags()["sync"] is False
    finally:
        durable.close()
        fast.close()


# -- errors -------------------------------------------------------------------------------------
def test_unopenable_path_raises_state_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    backend = open_state_backend(f"lmdb://{blocker}/env")
    with pytest.raises(StateUnavailable, match=f"cannot open LMDB environment at {blocker}/env"):
        backend.load(KEY)
    backend.close()
    lineage = open_lineage_store(f"lmdb://{blocker}/env")
    with pytest.raises(LineageError, match=f"{blocker}/env"):
        lineage.head("acme:bot:c1")
    lineage.close()


def test_read_only_directory_raises_state_unavailable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    tmp_path.chmod(0o500)
    try:
        backend = open_state_backend(f"lmdb://{tmp_path}/env")
        with pytest.raises(StateUnavailable, match=str(tmp_path)):
            backend.load(KEY)
        backend.close()
    finally:
        tmp_path.chmod(0o700)


# -- discovery ----------------------------------------------------------------------------------
def test_plugin_import_does_not_import_lmdb() -> None:
    code = "import sys, aq_state_lmdb.plugin; assert 'lmdb' not in sys.modules, 'lmdb imported'; print('ok')"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_hooks_register_the_lmdb_scheme() -> None:
    import aq_state_lmdb.plugin as plugin

    pm = pluggy.PluginManager("aq")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="state-lmdb")
    found: dict[str, object] = {}
    pm.hook.aq_register_state_backends(
        register=lambda scheme, factory, description="": found.update(state=(scheme, factory))
    )
    pm.hook.aq_register_lineage_stores(
        register=lambda scheme, factory, description="": found.update(lineage=(scheme, factory))
    )
    assert found == {"state": ("lmdb", open_state_backend), "lineage": ("lmdb", open_lineage_store)}


def test_entry_point_is_discoverable() -> None:
    try:
        importlib.metadata.distribution("aq-state-lmdb")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("AQ_TEST_INSTALLED"):
            pytest.fail("AQ_TEST_INSTALLED is set but aq-state-lmdb is not installed")
        pytest.skip("aq-state-lmdb is not installed (pip install ./plugins/aq-state-lmdb)")
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="aq")}
    assert points.get("state-lmdb") == "aq_state_lmdb.plugin"
