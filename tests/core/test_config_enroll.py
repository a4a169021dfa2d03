"""``aq.toml`` (aqcore/config.py), ``Runtime.from_config`` and one-annotation enrollment
(aqcore/enroll.py): the runtime is built once, generations run as the enrolled agent, and
conversations carry their history."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

import aqcore
import aqcore.enroll as enroll
from aqcore.config import load_config
from aqcore.errors import PolicyError, UsageError
from aqcore.models import Message
from aqcore.policy import build_policy
from aqcore.runtime import Runtime
from aqcore.testing import ScriptedAdapter

POLICY = 'name = "support"\nversion = "2"\nrefusal = "No."\n'


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A project directory with a policy under policies/ and a cwd elsewhere."""
    project = tmp_path / "project"
    (project / "policies").mkdir(parents=True)
    (project / "policies" / "support.toml").write_text(POLICY)
    (tmp_path / "elsewhere").mkdir()
    return project


def write_config(directory: Path, body: str, name: str = "aq.toml") -> Path:
    path = directory / name
    path.write_text(body)
    return path


def unique_store() -> str:
    return f"memory:enroll-{uuid.uuid4().hex}"


# -- aq.toml --------------------------------------------------------------------------------

def test_from_config_resolves_paths_against_the_file(config_dir, monkeypatch, pm):
    store = unique_store()
    path = write_config(config_dir, f"""
[runtime]
adapter = "test"
model = "default"
policy = "policies/support.toml"
store = "{store}"
journal = "state/journal"
tenant = "acme"
""")
    monkeypatch.chdir(config_dir.parent / "elsewhere")
    runtime = Runtime.from_config(path, plugin_manager=pm)
    try:
        assert runtime.policy.name == "support"
        assert Path(runtime.policy.source) == (config_dir / "policies" / "support.toml").resolve()
        assert runtime.store_url == store
        assert runtime.tenant == "acme"
        assert runtime.state.journal.directory.parent == (config_dir / "state" / "journal").resolve()
        result = runtime.generate("hello", agent="a", conversation="c")
        assert result.scope.tenant == "acme"
        assert result.text
    finally:
        runtime.close()


def test_config_paths_absolute_and_urls_are_kept(tmp_path):
    path = write_config(tmp_path, f"""
[runtime]
policy = "{tmp_path / 'p.toml'}"
store = "lmdb:///var/lib/aq"
lineage = "receipts/lineage.jsonl"
key = "keys/signing.pem"
keyring = "/etc/aq/keyring.json"
""")
    kwargs = load_config(path).runtime_kwargs()
    assert kwargs["policy"] == str(tmp_path / "p.toml")
    assert kwargs["store"] == "lmdb:///var/lib/aq"
    assert kwargs["lineage"] == str((tmp_path / "receipts" / "lineage.jsonl").resolve())
    assert kwargs["key"] == str((tmp_path / "keys" / "signing.pem").resolve())
    assert kwargs["keyring"] == "/etc/aq/keyring.json"
    assert kwargs["journal"] is None
    assert (kwargs["adapter"], kwargs["model"], kwargs["tenant"]) == ("test", "default", "default")


def test_keyword_overrides_win_over_the_file(config_dir, pm):
    path = write_config(config_dir, '[runtime]\npolicy = "policies/support.toml"\ntenant = "acme"\n')
    runtime = Runtime.from_config(path, tenant="other", store=unique_store(), plugin_manager=pm)
    try:
        assert runtime.tenant == "other"
    finally:
        runtime.close()


def test_unknown_runtime_key_names_the_key_and_the_file(config_dir):
    path = write_config(config_dir, '[runtime]\npolicy = "policies/support.toml"\nadaptor = "test"\n')
    with pytest.raises(UsageError) as info:
        Runtime.from_config(path)
    message = str(info.value)
    assert "'runtime.adaptor'" in message and "unknown key" in message
    assert str(path) in message


def test_mistyped_runtime_value_names_the_key(config_dir):
    path = write_config(config_dir, '[runtime]\npolicy = "policies/support.toml"\nstate_timeout_s = "soon"\n')
    with pytest.raises(UsageError, match=r"runtime\.state_timeout_s"):
        load_config(path)


@pytest.mark.parametrize("body, needle", [
    ('policy = "p.toml"\n', "[runtime]"),
    ('runtime = "test"\n', "[runtime]"),
    ("", "[runtime]"),
    ('[runtime]\npolicy = "p.toml"\n[extra]\nx = 1\n', "extra"),
    ("[runtime\n", "not valid TOML"),
])
def test_bad_config_files(tmp_path, body, needle):
    path = write_config(tmp_path, body)
    with pytest.raises(UsageError) as info:
        load_config(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_config_without_policy_is_rejected(tmp_path):
    path = write_config(tmp_path, '[runtime]\nadapter = "test"\n')
    with pytest.raises(UsageError, match=r"runtime\.policy"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match=r"cannot read config .*nope\.toml"):
        load_config(tmp_path / "nope.toml")


def test_config_from_the_environment_then_the_working_directory(config_dir, monkeypatch):
    env_path = write_config(config_dir, '[runtime]\npolicy = "policies/support.toml"\ntenant = "env"\n', "env.toml")
    write_config(config_dir, '[runtime]\npolicy = "policies/support.toml"\ntenant = "cwd"\n')
    monkeypatch.chdir(config_dir)
    monkeypatch.setenv("AQ_CONFIG", str(env_path))
    assert load_config().tenant == "env"
    monkeypatch.delenv("AQ_CONFIG")
    assert load_config().tenant == "cwd"


def test_a_policy_named_in_the_config_that_does_not_exist(config_dir, pm):
    path = write_config(config_dir, '[runtime]\npolicy = "policies/missing.toml"\n')
    with pytest.raises(PolicyError, match=r"missing\.toml"):
        Runtime.from_config(path, plugin_manager=pm)


# -- enrollment -----------------------------------------------------------------------------

@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "support.toml"
    path.write_text(POLICY)
    return path


def test_generate_inside_an_enrolled_function_runs_as_that_agent(policy_file, pm):
    store = unique_store()

    @aqcore.inference_control("support-agent", policy=policy_file, adapter="test", store=store, plugin_manager=pm)
    def answer(question: str):
        return aqcore.generate(question, conversation="c")

    result = answer("Where is my order?")
    assert result.scope.agent == "support-agent"
    assert result.scope.conversation == "c"
    assert result.policy_name == "support"
    assert result.text and result.finish_reason == "stop"
    assert answer.__name__ == "answer" and answer.__aq_agent__ == "support-agent"
    # the state is the agent's, in the configured store
    with Runtime(policy=policy_file, store=store, plugin_manager=pm) as reader:
        state = reader.load_state("support-agent", "c")
        assert [t.prompt for t in state.conversation.turns] == ["Where is my order?"]
        assert state.agent.entropy_spent == pytest.approx(result.entropy_spent["invocation"])
        assert reader.load_state("other-agent", "c").conversation.turns == []


def test_the_runtime_is_built_once_and_reused(policy_file, pm, monkeypatch):
    built: list[Runtime] = []

    class CountingRuntime(Runtime):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            built.append(self)

    monkeypatch.setattr(enroll, "Runtime", CountingRuntime)
    seen: list[Runtime] = []

    @aqcore.inference_control("support-agent", policy=policy_file, store=unique_store(), plugin_manager=pm)
    def answer(question: str):
        seen.append(enroll._current.get().runtime)
        return aqcore.generate(question, conversation="c")

    assert built == []  # decorating builds nothing
    answer("one")
    answer("two")
    threads = [threading.Thread(target=answer, args=("three",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert all(runtime is built[0] for runtime in seen) and len(seen) == 6


def test_enrollment_uses_a_given_runtime(make_runtime):
    adapter = ScriptedAdapter.from_pieces(["Fine", "."])
    runtime = make_runtime(adapter)

    @aqcore.inference_control("agent-7", runtime=runtime)
    def reply():
        return aqcore.generate("hi", conversation="c")

    assert reply().text == "Fine."
    assert runtime.load_state("agent-7", "c").conversation.turns[0].text == "Fine."


def test_enrollment_from_a_config_file(config_dir, monkeypatch):
    store = unique_store()
    path = write_config(config_dir, f'[runtime]\npolicy = "policies/support.toml"\nstore = "{store}"\n')
    monkeypatch.chdir(config_dir.parent / "elsewhere")

    @aqcore.inference_control("cfg-agent", config=path)
    def reply():
        return aqcore.generate("hello", conversation="c")

    result = reply()
    assert result.scope.agent == "cfg-agent" and result.policy_name == "support"


def test_generate_outside_an_enrolled_function_is_a_usage_error(policy_file, pm):
    with pytest.raises(UsageError, match="inference_control"):
        aqcore.generate("hi", conversation="c")

    @aqcore.inference_control("a", policy=policy_file, store=unique_store(), plugin_manager=pm)
    def failing():
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        failing()
    # the enrollment does not outlive the call, even one that raised
    with pytest.raises(UsageError):
        aqcore.generate("hi", conversation="c")


def test_nested_enrollments_restore_the_outer_agent(make_runtime):
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]))
    agents: list[str] = []

    @aqcore.inference_control("inner", runtime=runtime)
    def inner():
        agents.append(aqcore.generate("x", conversation="c").scope.agent)

    @aqcore.inference_control("outer", runtime=runtime)
    def outer():
        agents.append(aqcore.generate("x", conversation="c").scope.agent)
        inner()
        agents.append(aqcore.generate("x", conversation="c").scope.agent)

    outer()
    assert agents == ["outer", "inner", "outer"]


def test_a_bad_conversation_id_inside_an_enrolled_function(make_runtime):
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]))

    @aqcore.inference_control("a", runtime=runtime)
    def reply():
        return aqcore.generate("x", conversation="no spaces allowed")

    with pytest.raises(UsageError, match="conversation"):
        reply()


# -- multi-turn and streaming ---------------------------------------------------------------

def begun_messages(adapter: ScriptedAdapter) -> list[list[Message]]:
    return [args for call, args in adapter.calls if call == "begin"]


def test_a_second_turn_sees_the_first_in_its_messages(pm, tmp_path):
    adapter = ScriptedAdapter.from_pieces(["Sure", "."])
    policy = build_policy({"name": "p"}, pm.metric_classes())

    @aqcore.inference_control("agent", adapter=adapter, policy=policy, store=unique_store(),
                              journal=str(tmp_path / "j"), plugin_manager=pm)
    def chat(prompt: str, conversation: str):
        return aqcore.generate(prompt, conversation=conversation)

    chat("first question", "c")
    chat("second question", "c")
    chat("elsewhere", "d")
    first, second, other = begun_messages(adapter)
    assert first == [Message(role="user", content="first question")]
    assert second == [
        Message(role="user", content="first question"),
        Message(role="assistant", content="Sure."),
        Message(role="user", content="second question"),
    ]
    assert other == [Message(role="user", content="elsewhere")]  # history is per conversation


def test_history_keeps_the_latest_turns_only(make_runtime):
    from aqcore.runtime import HISTORY_TURNS

    adapter = ScriptedAdapter.from_pieces(["ok"])
    runtime = make_runtime(adapter)
    for i in range(HISTORY_TURNS + 2):
        runtime.generate(f"q{i}", agent="a", conversation="c")
    last = begun_messages(adapter)[-1]
    assert len(last) == 2 * HISTORY_TURNS + 1
    assert last[0] == Message(role="user", content="q1")
    assert last[-1] == Message(role="user", content=f"q{HISTORY_TURNS + 1}")


def test_explicit_messages_are_used_as_given(make_runtime):
    adapter = ScriptedAdapter.from_pieces(["ok"])
    runtime = make_runtime(adapter)
    runtime.generate("earlier", agent="a", conversation="c")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "now"}]
    runtime.generate(messages, agent="a", conversation="c")
    assert begun_messages(adapter)[-1] == [Message(role="system", content="Be brief."),
                                           Message(role="user", content="now")]
    assert runtime.load_state("a", "c").conversation.turns[-1].prompt == "now"
    with pytest.raises(UsageError, match="role"):
        runtime.generate([{"role": "robot", "content": "x"}], agent="a", conversation="c")
    with pytest.raises(UsageError, match="empty"):
        runtime.generate([], agent="a", conversation="c")


def test_streaming_generate_returns_emissions_and_sets_result(make_runtime):
    adapter = ScriptedAdapter.from_pieces(["Hello", ", ", "world", "."])
    runtime = make_runtime(adapter)

    @aqcore.inference_control("streamer", runtime=runtime)
    def reply():
        return aqcore.generate("hi", conversation="c", stream=True)

    stream = reply()
    assert stream.result is None
    first = next(stream)
    assert first.text == "Hello" and stream.result is None
    rest = list(stream)
    result = stream.result
    assert result is not None
    assert "".join(e.text for e in [first, *rest]) == result.text == "Hello, world."
    assert result.scope.agent == "streamer"
    assert [t.text for t in runtime.load_state("streamer", "c").conversation.turns] == ["Hello, world."]
