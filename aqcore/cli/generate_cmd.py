"""``aq generate``: one governed generation, streamed to a person or as one JSON object."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import UsageError
from .common import add_runtime_options, build_runtime


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("generate", help="run one governed generation")
    parser.add_argument("prompt", help="the user's message")
    add_runtime_options(parser)
    parser.add_argument("--agent", required=True, help="agent id")
    parser.add_argument("--conversation", required=True, help="conversation id")
    parser.add_argument("--source", action="append", default=[], metavar="FILE",
                        help="a source document for grounding (repeatable)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    parser.set_defaults(func=run)


def read_sources(paths: list[str]) -> list[str]:
    sources = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                sources.append(fh.read())
        except OSError as exc:
            raise UsageError(f"--source {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--source {path}: not UTF-8 text") from None
    return sources


def result_json(result: Any) -> dict[str, Any]:
    return {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "state_status": result.state_status,
        "confidence": result.confidence,
        "degraded_reason": result.degraded_reason,
        "verdicts": result.verdicts,
        "entropy_spent": result.entropy_spent,
        "tokens": result.tokens,
        "rollbacks": result.rollbacks,
        "commitments": [c.model_dump() for c in result.commitments],
        "model": result.model,
        "model_digest": result.model_digest,
        "adapter": result.adapter,
        "policy": {"name": result.policy_name, "digest": result.policy_digest},
        "scope": result.scope.model_dump(),
        "receipt": result.receipt,
    }


def run(args: argparse.Namespace) -> int:
    sources = read_sources(args.source)
    runtime = build_runtime(args)
    try:
        options = dict(
            agent=args.agent, conversation=args.conversation, tenant=args.tenant, sources=sources,
            seed=args.seed, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
            max_tokens=args.max_tokens,
        )
        if args.json:
            result = runtime.generate(args.prompt, **options)
            print(json.dumps(result_json(result), ensure_ascii=False))
            return 0
        from rich.console import Console

        console = Console(highlight=False)
        stream = runtime.generate(args.prompt, stream=True, **options)
        for emission in stream:
            console.print(emission.text, end="", style="yellow" if emission.redacted else None, soft_wrap=True)
        result = stream.result  # type: ignore[attr-defined]
        console.print()
        flag = "" if result.state_status == "full" else "  [bold red]state partial, confidence reduced[/]"
        Console(stderr=True, highlight=False).print(
            f"[dim]finish={result.finish_reason} tokens={result.tokens} rollbacks={result.rollbacks} "
            f"verdicts={json.dumps(result.verdicts)}[/]{flag}"
        )
        return 0
    finally:
        runtime.close()
