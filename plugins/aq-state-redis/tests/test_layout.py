"""Key layout, URL options and discovery: fast, no server (fakeredis where a server is needed
and no Lua script runs)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import fakeredis
import pluggy
import pytest
from aq_state_redis.keys import (
    chain_keys,
    chain_of,
    chain_scan_pattern,
    state_key_of,
    state_scan_pattern,
    state_storage_key,
    tenant_of,
)
from aq_state_redis.lineage import RedisLineageStore
from aq_state_redis.options import RedisOptions, mask, parse_url
from aq_state_redis.plugin import open_lineage_store, open_state_backend
from aq_state_redis.state import RedisStateBackend
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from aqcore import hookspecs
from aqcore.errors import UsageError
from aqcore.state.backend import Versioned

ids = st.text(alphabet="abcXYZ019._@-", min_size=1, max_size=12)
kinds = st.sampled_from(["agent", "conversation", "memo", "agent_x"])


@st.composite
def state_keys(draw: st.DrawFn) -> str:
    kind = draw(kinds)
    arity = {"agent": 2, "conversation": 3}.get(kind) or draw(st.integers(1, 4))
    return f"{kind}/" + ":".join(draw(ids) for _ in range(arity))


def _tag_tenant(storage: str) -> str:
    """The first id inside the hash tag: the tenant."""
    return storage[len("aq:{") :].partition("}")[0].split(":")[0]


# -- layout -------------------------------------------------------------------------------------
def test_documented_layout() -> None:
    assert state_storage_key("conversation/acme:bot:c1") == "aq:{acme:bot:c1}:state"
    assert state_storage_key("agent/acme:bot") == "aq:{acme:bot}:state"
    assert state_storage_key("memo/acme:bot:c1") == "aq:{acme:bot:c1}:state:memo"
    assert chain_keys("acme:bot:c1") == ("aq:{acme:bot:c1}:receipts", "aq:{acme:bot:c1}:head")


def test_a_conversation_lives_in_one_cluster_slot() -> None:
    slots = {
        key_slot(k.encode())
        for k in (state_storage_key("conversation/acme:bot:c1"), *chain_keys("acme:bot:c1"))
    }
    assert len(slots) == 1


@given(state_keys())
def test_state_keys_round_trip_and_keep_their_tenant(key: str) -> None:
    storage = state_storage_key(key)
    assert state_key_of(storage) == key
    assert _tag_tenant(storage) == tenant_of(key)


@given(state_keys(), state_keys())
def test_distinct_keys_never_share_a_redis_key(a: str, b: str) -> None:
    if a != b:
        assert state_storage_key(a) != state_storage_key(b)
    if tenant_of(a) != tenant_of(b):
        assert _tag_tenant(state_storage_key(a)) != tenant_of(b)


@given(state_keys(), st.text(alphabet="abc019:/_@.-*{}", max_size=10))
def test_scan_pattern_never_misses_a_matching_key(key: str, suffix: str) -> None:
    import fnmatch

    storage = state_storage_key(key)
    for cut in range(len(key) + 1):
        prefix = key[:cut]
        assert fnmatch.fnmatchcase(storage, state_scan_pattern(prefix)), (key, prefix)
    assert state_key_of(storage).startswith(key[: len(key) // 2])


@given(st.text(max_size=40))
def test_foreign_redis_keys_are_not_state(raw: str) -> None:
    key = state_key_of(raw)
    assert key is None or state_storage_key(key) == raw


def test_chain_names() -> None:
    assert chain_of("aq:{acme:bot:c1}:head") == "acme:bot:c1"
    assert chain_of("aq:{acme:bot}:head") is None
    assert chain_of("aq:{acme:bot:c1}:state") is None
    assert chain_scan_pattern("acme:") == "aq:{acme:*}:head"
    assert chain_scan_pattern("a*") == "aq:{*}:head"  # wildcards in a prefix never reach SCAN


# -- URL ----------------------------------------------------------------------------------------
def test_url_options() -> None:
    options = parse_url(
        "redis://127.0.0.1:6390/2?connect_timeout=0.2&timeout=0.5&retries=0&max_connections=8"
    )
    assert options == RedisOptions(
        "redis://127.0.0.1:6390/2",
        "redis://127.0.0.1:6390/2?connect_timeout=0.2&timeout=0.5&retries=0&max_connections=8",
        0.2,
        0.5,
        0,
        8,
    )
    defaults = parse_url("rediss://cache.internal:6380/0")
    assert (defaults.connect_timeout, defaults.timeout, defaults.retries) == (0.5, 1.0, 1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("lmdb:///x", "not a redis"),
        ("redis:///0", "no host"),
        ("redis://h:port/0", "Port"),
        ("redis://h:6379/zero", "database number"),
        ("redis://h:6379/0?timeout=0", "positive number"),
        ("redis://h:6379/0?connect_timeout=soon", "positive number"),
        ("redis://h:6379/0?timeout=inf", "positive number"),
        ("redis://h:6379/0?retries=-1", "integer >= 0"),
        ("redis://h:6379/0?max_connections=0", "integer >= 1"),
        ("redis://h:6379/0?socket_timeout=1", "unknown option"),
        ("redis://h:6379/0?timeout=1&timeout=2", "2 times"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_url(url)


def test_passwords_never_reach_messages() -> None:
    assert mask("redis://user:s3cret@h:6379/0") == "redis://user:***@h:6379/0"
    with pytest.raises(UsageError) as caught:
        parse_url("redis://:s3cret@h:6379/0?bogus=1")
    assert "s3cret" not in str(caught.value)


# -- fakeredis (no Lua: reads, listing, delete) ---------------------------------------------------
def test_reads_lists_and_deletes_the_documented_layout() -> None:
    fake = fakeredis.FakeRedis()
    fake.hset("aq:{acme:bot:c1}:state", mapping={"v": 3, "d": json.dumps({"spent": 2.5})})
    fake.hset("aq:{acme:bot}:state", mapping={"v": 1, "d": "{}"})
    fake.hset("aq:{other:bot:c1}:state", mapping={"v": 1, "d": "{}"})
    fake.set("aq:{acme:bot:c9}:state", "a string is not aq state")
    fake.hset("unrelated", mapping={"v": 1})
    backend = RedisStateBackend("redis://fake:6379/0", client=fake)
    assert backend.load("conversation/acme:bot:c1") == Versioned(3, {"spent": 2.5})
    assert sorted(backend.keys("")) == [
        "agent/acme:bot",
        "conversation/acme:bot:c1",
        "conversation/other:bot:c1",
    ]
    assert list(backend.keys("conversation/acme:")) == ["conversation/acme:bot:c1"]
    assert backend.delete("agent/acme:bot") is True
    assert backend.load("agent/acme:bot") is None


def test_reads_a_stream_in_pages() -> None:
    fake = fakeredis.FakeRedis()
    for seq in range(1, 301):
        fake.xadd(
            "aq:{acme:bot:c1}:receipts", {"seq": seq, "digest": "d", "envelope": f"e{seq}"}, id=f"{seq}-0"
        )
    fake.set("aq:{acme:bot:c1}:head", "300:" + "a" * 64)
    store = RedisLineageStore("redis://fake:6379/0", client=fake)
    assert list(store.records("acme:bot:c1")) == [f"e{seq}".encode() for seq in range(1, 301)]
    assert store.head("acme:bot:c1").seq == 300
    assert list(store.chains("acme:")) == ["acme:bot:c1"]


# -- discovery ----------------------------------------------------------------------------------
def test_plugin_import_does_not_import_redis() -> None:
    code = (
        "import sys, aq_state_redis.plugin; assert 'redis' not in sys.modules, 'redis imported'; print('ok')"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_hooks_register_the_redis_schemes() -> None:
    import aq_state_redis.plugin as plugin

    pm = pluggy.PluginManager("aq")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="state-redis")
    state: dict[str, object] = {}
    lineage: dict[str, object] = {}
    pm.hook.aq_register_state_backends(register=lambda s, f, description="": state.update({s: f}))
    pm.hook.aq_register_lineage_stores(register=lambda s, f, description="": lineage.update({s: f}))
    assert state == {
        "redis": open_state_backend, "rediss": open_state_backend, "redis+cluster": open_state_backend,
    }
    assert lineage == {
        "redis": open_lineage_store, "rediss": open_lineage_store, "redis+cluster": open_lineage_store,
    }  # fmt: skip


def test_hiredis_parses_replies() -> None:
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE


def test_entry_point_is_discoverable() -> None:
    try:
        importlib.metadata.distribution("aq-state-redis")
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("AQ_TEST_INSTALLED"):
            pytest.fail("AQ_TEST_INSTALLED is set but aq-state-redis is not installed")
        pytest.skip("aq-state-redis is not installed (pip install ./plugins/aq-state-redis)")
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="aq")}
    assert points.get("state-redis") == "aq_state_redis.plugin"
