"""``aq demo``: a governed multi-turn support conversation on the embedded defaults (llama.cpp
with SmolLM2, LMDB for state and lineage), showing the gate's interventions as they happen,
state carried between turns, and the conversation's receipts verified at the end."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("demo", help="run the demo support conversation")
    parser.add_argument("--adapter", default="llamacpp", help="adapter (default: llamacpp)")
    parser.add_argument("--model", help="model (default: smollm2 on llamacpp, the adapter's default otherwise)")
    parser.add_argument("--dir", help="where the demo keeps state, lineage and keys (default: $AQ_HOME/demo)")
    parser.add_argument("--store", help="state store URL (default: lmdb:///<dir>/store)")
    parser.add_argument("--lineage", help="lineage store URL (default: the state store)")
    parser.add_argument("--conversation", help="conversation id; reuse one to continue it after a restart")
    parser.add_argument("--policy", help="policy file (default: the bundled support-agent policy)")
    parser.set_defaults(func=run)


def _keys(directory: Path) -> Path:
    from ..lineage.keys import KEYRING_FILE, generate_key

    if not (directory / KEYRING_FILE).exists():
        generate_key(directory)
    return directory


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .. import demo
    from ..lineage import Keyring, verify_store
    from ..runtime import Runtime
    from ..state.journal import aq_home

    console = Console(highlight=False)
    directory = Path(args.dir) if args.dir else aq_home() / "demo"
    directory.mkdir(parents=True, exist_ok=True)
    store = args.store or f"lmdb://{(directory / 'store').resolve()}"
    lineage = args.lineage or store
    keys = _keys(directory / "keys")
    conversation = args.conversation or time.strftime("demo-%Y%m%d-%H%M%S")
    try:
        runtime = Runtime(
            adapter=args.adapter, model=args.model or ("smollm2" if args.adapter == "llamacpp" else "default"),
            policy=args.policy or demo.policy_path(), store=store,
            lineage=lineage, key=str(keys), journal=str(directory / "journal"), leaves=str(directory / "leaves"),
        )
    except UsageError as exc:
        if "lmdb" in str(exc) or "llamacpp" in str(exc):
            raise UsageError(f"{exc}\n  the demo needs aq-state-lmdb and aq-llamacpp: run scripts/demo") from None
        raise
    try:
        adapter = runtime.adapter
        policy = runtime.policy
        console.rule("[bold]aq demo")
        console.print(f"model     {adapter.model_name} via {runtime.adapter_name}  sha256:{adapter.model_digest[:16]}…")
        console.print(f"policy    {policy.name} {policy.version}  sha256:{policy.digest[:16]}…")
        console.print(f"state     {store}")
        console.print(f"lineage   {lineage}  (keys in {keys})")
        console.print(f"scope     agent support-agent, conversation {conversation}")
        state = runtime.load_state("support-agent", conversation)
        if state.conversation.turns:
            console.print(
                f"[cyan]resuming: {len(state.conversation.turns)} earlier turns and commitments "
                f"{_commitments(state.conversation.commitments)} loaded from the store[/]"
            )
        for prompt in demo.TURNS:
            _turn(console, runtime, prompt, conversation)
        report = verify_store(
            runtime.lineage.store, Keyring.load(keys / "keyring.json"),  # type: ignore[union-attr]
            conversation=f"default:support-agent:{conversation}",
        )
        console.rule()
        mark = "[green]verified[/]" if report.ok else "[bold red]FAILED[/]"
        console.print(f"lineage   {mark}: {report.summary()}")
        console.print(
            "try       "
            f"aq state show --store {store} --agent support-agent --conversation {conversation}\n"
            f"          aq demo --conversation {conversation}{f' --dir {args.dir}' if args.dir else ''}"
            "   (continues it: state survives the restart)"
        )
        return 0 if report.ok else 1
    finally:
        runtime.close()


INDENT = " " * 10


def _commitments(commitments: dict[str, Any]) -> str:
    return ", ".join(f"{slot}={c.value}" for slot, c in commitments.items()) or "none"


def _turn(console: Any, runtime: Any, prompt: str, conversation: str) -> None:
    from .. import demo

    console.print()
    console.print(f"[bold]customer[/]  {prompt}")
    console.print("[bold]agent[/]     ", end="")
    # where the cursor is: the number of characters of text on the current line, and whether
    # the line starts at the text column already
    line = {"chars": 0, "indented": True}

    def on_event(event: Any) -> None:
        what = {"rollback": "rolled back", "reject": "rejected", "redact": "redacted", "halt": "halted",
                "refusal": "refused", "gate_error": "gate error"}.get(event.kind, event.kind)
        n = event.detail.get("tokens", 0)
        detail = f" {n} token{'s' if n != 1 else ''}" if event.kind == "rollback" else ""
        reason = event.reason or event.metric
        if line["chars"]:
            console.print()
        lead = "" if line["indented"] and not line["chars"] else INDENT
        console.print(f"{lead}[red]⟲ {event.metric or 'gate'} {what}{detail}: {reason}[/]")
        console.print(INDENT, end="")
        line["chars"], line["indented"] = 0, True

    stream = runtime.generate(
        prompt, agent="support-agent", conversation=conversation, sources=demo.SOURCES, system=demo.SYSTEM,
        max_tokens=demo.MAX_TOKENS, on_event=on_event, stream=True,
    )
    for emission in stream:
        console.print(emission.text, end="", style="yellow" if emission.redacted else None, soft_wrap=True)
        line["chars"] += len(emission.text)
    result = stream.result
    console.print()
    spent = result.entropy_spent
    state = runtime.load_state("support-agent", conversation)
    console.print(
        f"[dim]          finish={result.finish_reason} tokens={result.tokens} "
        f"surprisal={spent['invocation']:.1f} nats (conversation {spent['conversation']:.1f}) "
        f"state v{state.conversation.version} commitments: {_commitments(state.conversation.commitments)} "
        f"receipt seq {result.receipt.get('seq', result.receipt.get('status'))}[/]"
    )
    if result.state_status != "full":
        console.print(f"[bold red]          state partial, confidence reduced: {result.degraded_reason}[/]")
