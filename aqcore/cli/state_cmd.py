"""``aq state show | export | delete | replay``: inspect and manage semantic state."""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from .common import add_runtime_options, build_runtime


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("state", help="inspect and manage semantic state")
    sub = parser.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print an agent's and a conversation's state")
    export = sub.add_parser("export", help="write every state document of a tenant as JSON lines")
    delete = sub.add_parser("delete", help="delete a conversation's (or an agent's) state")
    replay = sub.add_parser("replay", help="replay journalled updates into the store")
    for p in (show, export, delete, replay):
        add_runtime_options(p, model_options=False)
    for p in (show, delete):
        p.add_argument("--agent", required=True)
        p.add_argument("--conversation")
    show.add_argument("--json", action="store_true")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    show.set_defaults(func=show_state)
    export.set_defaults(func=export_state)
    delete.set_defaults(func=delete_state)
    replay.set_defaults(func=replay_state)


def show_state(args: argparse.Namespace) -> int:
    if not args.conversation:
        raise UsageError("aq state show needs --conversation")
    runtime = build_runtime(args)
    try:
        state = runtime.load_state(args.agent, args.conversation, args.tenant)
        doc = {
            "scope": {"tenant": state.scope.tenant, "agent": state.scope.agent,
                      "conversation": state.scope.conversation},
            "store": runtime.store_display,
            "state_status": state.status,
            "degraded_reason": state.degraded_reason,
            "agent": state.agent.model_dump(mode="json", exclude={"applied_updates"}),
            "conversation": state.conversation.model_dump(mode="json", exclude={"applied_updates"}),
        }
        if args.json:
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        else:
            from rich.console import Console
            from rich.pretty import Pretty

            Console().print(Pretty(doc))
        return 0 if state.status == "full" else 1
    finally:
        runtime.close()


def export_state(args: argparse.Namespace) -> int:
    from ..state.keys import AGENT, CONVERSATION, tenant_prefix

    runtime = build_runtime(args)
    tenant = runtime.scope("_", "_", args.tenant).tenant  # validates the id
    backend = runtime.state.backend
    out = open(args.out, "w", encoding="utf-8") if args.out != "-" else None
    try:
        for kind in (AGENT, CONVERSATION):
            for key in backend.keys(tenant_prefix(kind, tenant)):
                held = backend.load(key)
                if held is None:
                    continue
                line = json.dumps({"key": key, "version": held.version, "doc": held.doc}, ensure_ascii=False)
                print(line, file=out) if out else print(line)
        return 0
    finally:
        if out:
            out.close()
        runtime.close()


def delete_state(args: argparse.Namespace) -> int:
    from ..state.keys import agent_key, conversation_key

    runtime = build_runtime(args)
    try:
        scope = runtime.scope(args.agent, args.conversation or "_", args.tenant)
        key = conversation_key(scope) if args.conversation else agent_key(scope)
        if not args.yes:
            raise UsageError(f"refusing to delete {key} without --yes")
        existed = runtime.state.backend.delete(key)
        print(f"{'deleted' if existed else 'no such state'}: {key}")
        return 0 if existed else 1
    finally:
        runtime.close()


def replay_state(args: argparse.Namespace) -> int:
    runtime = build_runtime(args)
    try:
        n = runtime.state.replay()
        print(f"replayed {n} journalled update(s) into {runtime.store_display}")
        return 0
    finally:
        runtime.close()
