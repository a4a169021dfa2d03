"""The Redis stores on a real local Redis Cluster (three primaries, no replicas): the shared
state and lineage contract over ``redis+cluster://``; one conversation's state, receipts and head
in one slot while different conversations spread over the nodes; prefix listing that SCANs every
primary; the runtime generating over the cluster; and a cluster that is down or unreachable
raising StateUnavailable / LineageError with the password masked.

Without redis-server and redis-cli the module skips, unless AQ_REQUIRE_REDIS=1 makes that an error.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aq_state_redis.keys import chain_keys, state_storage_key
from aq_state_redis.options import parse_url
from aq_state_redis.plugin import open_lineage_store, open_state_backend
from redis_server import find_redis_server, free_port
from store_contract import LineageStoreContract, StateBackendContract, digest_of

from aqcore.errors import LineageError, StateUnavailable, UsageError
from aqcore.plugins import get_plugin_manager
from aqcore.policy import build_policy
from aqcore.runtime import Runtime

PRIMARIES = 3
BUS = 10000  # a cluster node also listens on its port + 10000 (the cluster bus)


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free and valid too."""
    for _ in range(1000):
        port = random.randint(20000, 65535 - BUS)
        if _is_free(port) and _is_free(port + BUS):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _need_cluster_binaries() -> str:
    server = find_redis_server()
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        missing = "redis-server" if server is None else "redis-cli"
        if os.environ.get("AQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"AQ_REQUIRE_REDIS=1 but {missing} is not installed (needed for a Redis Cluster)")
        pytest.skip(f"{missing} is not installed (a Redis Cluster needs redis-server and redis-cli)")
    return cli


class LocalCluster:
    """Three cluster-enabled redis-servers joined by ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, cli: str) -> None:
        self.directory = directory
        self.cli = cli
        self.binary = find_redis_server()
        self.ports: list[int] = []
        while len(self.ports) < PRIMARIES:
            port = cluster_port()
            if port not in self.ports and port + BUS not in self.ports:
                self.ports.append(port)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=5)

    def start(self, wait: float = 30.0) -> None:
        assert self.binary is not None
        for port in self.ports:
            workdir = self.directory / str(port)
            workdir.mkdir(parents=True, exist_ok=True)
            self.procs.append(
                subprocess.Popen(
                    [
                        self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                        "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                        "--save", "", "--appendonly", "no", "--daemonize", "no",
                        "--logfile", str(workdir / "redis.log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        deadline = time.monotonic() + wait
        for port in self.ports:
            self._until(deadline, lambda p=port: self.node(p).ping(), f"redis-server on {port} answers")
        created = subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=wait,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        for port in self.ports:
            self._until(
                deadline,
                lambda p=port: self._cluster_state(p) == "ok",
                f"cluster_state:ok on {port}",
            )

    def _cluster_state(self, port: int) -> str:
        client = self.node(port)
        try:
            info = client.execute_command("CLUSTER INFO")  # redis-py parses the reply into a dict
        finally:
            client.close()
        return str(info.get("cluster_state")) if isinstance(info, dict) else ""

    def _until(self, deadline: float, check: Callable[[], Any], what: str) -> None:
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    logs = "".join(
                        (self.directory / str(p) / "redis.log").read_text(errors="replace")[-600:]
                        for p in self.ports
                        if (self.directory / str(p) / "redis.log").exists()
                    )
                    raise RuntimeError(f"a cluster redis-server exited with {proc.returncode}: {logs}")
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting until {what}")
            time.sleep(0.05)

    def flush(self) -> None:
        for port in self.ports:
            client = self.node(port)
            client.flushall()
            client.close()

    def holder(self, key: str) -> int:
        """The port of the node whose keyspace holds ``key`` (asked of every node, not computed)."""
        found = []
        for port in self.ports:
            client = self.node(port)
            try:
                # a node lists only the keys of its own slots (EXISTS elsewhere would answer MOVED)
                slot = int(client.execute_command("CLUSTER KEYSLOT", key))
                held = client.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
                if key in {k.decode() if isinstance(k, bytes) else str(k) for k in held}:
                    found.append(port)
            finally:
                client.close()
        assert len(found) == 1, f"{key} is held by {found}"
        return found[0]

    def slot(self, key: str) -> int:
        client = self.node(self.ports[0])
        try:
            return int(client.execute_command("CLUSTER KEYSLOT", key))
        finally:
            client.close()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs = []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cli = _need_cluster_binaries()
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), cli)
    started = time.monotonic()
    try:
        local.start()
        print(f"\nRedis Cluster of {PRIMARIES} primaries up in {time.monotonic() - started:.2f}s")
        yield local
    finally:
        local.stop()


@pytest.fixture
def store_url(cluster: LocalCluster) -> str:
    """The module's cluster, emptied before each test (overrides conftest's single server)."""
    cluster.flush()
    return f"{cluster.url}?connect_timeout=0.5&timeout=2"


# -- the shared contract --------------------------------------------------------------------------
class TestClusterState(StateBackendContract):
    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_state_backend


class TestClusterLineage(LineageStoreContract):
    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_lineage_store


# -- the URL --------------------------------------------------------------------------------------
def test_cluster_url_is_parsed() -> None:
    options = parse_url("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2,10.0.0.3:7002/?timeout=0.5&retries=0")
    assert options.cluster
    assert options.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("10.0.0.3", 7002))
    assert (options.timeout, options.retries, options.password) == (0.5, 0, "s3cret")
    assert options.display == "redis+cluster://:***@10.0.0.1:7000,10.0.0.2,10.0.0.3:7002/?timeout=0.5&retries=0"
    assert "s3cret" not in repr(options.display) and "s3cret" not in repr(options).replace(options.address, "")
    assert not parse_url("redis://h:6379/0").cluster


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster:///", "without a host"),
        ("redis+cluster://h1:7000,,h2:7001/", "without a host"),
        ("redis+cluster://h1:port/", "Port"),
        ("redis+cluster://h1:7000/1", "only database 0"),
        ("redis+cluster://:s3cret@h1:7000/?bogus=1", "unknown option"),
    ],
)
def test_bad_cluster_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_url(url)
    assert "s3cret" not in str(caught.value)


# -- placement ------------------------------------------------------------------------------------
def test_one_conversation_shares_a_slot_and_conversations_spread(
    cluster: LocalCluster, store_url: str
) -> None:
    backend, store = open_state_backend(store_url), open_lineage_store(store_url)
    try:
        holders: dict[int, list[str]] = {}
        for i in range(24):
            chain = f"acme:bot:c{i}"
            assert backend.compare_and_set(f"conversation/{chain}", 0, {"i": i})
            store.append(chain, 1, "", digest_of(b"r1"), b"r1")
            state = state_storage_key(f"conversation/{chain}")
            receipts, head = chain_keys(chain)
            # state, receipts and head: one slot, one node
            assert len({cluster.slot(k) for k in (state, receipts, head)}) == 1
            nodes = {cluster.holder(k) for k in (state, receipts, head)}
            assert len(nodes) == 1
            holders.setdefault(nodes.pop(), []).append(chain)
        # the conversations are spread over every primary
        assert sorted(holders) == sorted(cluster.ports), holders
    finally:
        backend.close()
        store.close()


def test_prefix_listing_scans_every_primary(cluster: LocalCluster, store_url: str) -> None:
    backend, store = open_state_backend(store_url), open_lineage_store(store_url)
    try:
        written = []
        for tenant in ("acme", "other"):
            for i in range(30):
                chain = f"{tenant}:bot:c{i}"
                assert backend.compare_and_set(f"conversation/{chain}", 0, {"i": i})
                store.append(chain, 1, "", digest_of(b"x"), b"x")
                written.append(chain)
        acme = {c for c in written if c.startswith("acme:")}
        on = {cluster.holder(state_storage_key(f"conversation/{c}")) for c in acme}
        assert len(on) == PRIMARIES  # the listing below must reach all three nodes
        assert set(backend.keys("conversation/acme:")) == {f"conversation/{c}" for c in acme}
        assert set(store.chains("acme:")) == acme
        assert set(store.chains()) == set(written)
        assert sorted(backend.keys("")) == sorted(f"conversation/{c}" for c in written)
    finally:
        backend.close()
        store.close()


# -- the runtime ----------------------------------------------------------------------------------


@pytest.mark.parametrize("startup", ["one", "all"])
def test_runtime_generates_on_the_cluster_and_state_round_trips(
    cluster: LocalCluster, store_url: str, startup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if startup == "one":
        store_url = f"redis+cluster://127.0.0.1:{cluster.ports[-1]}/?connect_timeout=0.5&timeout=2"
    pm = get_plugin_manager()
    policy = build_policy({"name": "p"}, pm.metric_classes())
    runs = []
    for attempt in range(2):
        with Runtime(adapter="test", policy=policy, store=store_url, journal=tmp_path / "journal") as runtime:
            for i in range(3):
                result = runtime.generate(f"hello {attempt}.{i}", agent="bot", conversation="c1", seed=i)
                assert result.state_status == "full", result
                runs.append(result)
            state = runtime.load_state("bot", "c1")
        assert state.status == "full"
        assert len(state.conversation.turns) == 3 * (attempt + 1)
        assert state.conversation.version == 3 * (attempt + 1)
    # a fresh runtime reads back what the first wrote, and so does the backend itself
    backend = open_state_backend(store_url)
    try:
        keys = sorted(backend.keys("conversation/"))
        assert keys == ["conversation/default:bot:c1"]
        held = backend.load(keys[0])
        assert held is not None and held.version == 6
    finally:
        backend.close()


# -- failures -------------------------------------------------------------------------------------
def test_an_unreachable_cluster_raises_with_the_password_masked() -> None:
    dead = free_port()
    url = f"redis+cluster://:s3cret@127.0.0.1:{dead}/?connect_timeout=0.2&timeout=0.3&retries=0"
    backend = open_state_backend(url)  # opening does not connect
    store = open_lineage_store(url)
    started = time.monotonic()
    with pytest.raises(StateUnavailable) as state_error:
        backend.load("conversation/acme:bot:c1")
    with pytest.raises(StateUnavailable):
        list(backend.keys(""))
    with pytest.raises(LineageError) as lineage_error:
        store.append("acme:bot:c1", 1, "", digest_of(b"x"), b"x")
    assert time.monotonic() - started < 10
    for caught in (state_error, lineage_error):
        message = str(caught.value)
        assert f"127.0.0.1:{dead}" in message and ":***@" in message
        assert "s3cret" not in message
    backend.close()
    store.close()


def test_a_cluster_node_that_dies_raises_state_unavailable(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A cluster of its own, one primary killed: its slots are uncovered, so calls on them fail."""
    cli = _need_cluster_binaries()
    local = LocalCluster(tmp_path_factory.mktemp("cluster-fault"), cli)
    try:
        local.start()
        url = f"{local.url}?connect_timeout=0.2&timeout=0.5&retries=0"
        backend = open_state_backend(url)
        store = open_lineage_store(url)
        keys = [f"conversation/acme:bot:c{i}" for i in range(24)]
        for key in keys:
            assert backend.compare_and_set(key, 0, {"ok": True})
        victim = local.holder(state_storage_key(keys[0]))
        local.procs[local.ports.index(victim)].kill()
        started = time.monotonic()
        with pytest.raises(StateUnavailable, match=r"redis at redis\+cluster://127\.0\.0\.1:"):
            backend.load(keys[0])
        with pytest.raises(StateUnavailable):
            list(backend.keys(""))
        with pytest.raises(LineageError):
            store.append("acme:bot:c0", 1, "", digest_of(b"x"), b"x")
        assert time.monotonic() - started < 30
        backend.close()
        store.close()
    finally:
        local.stop()
