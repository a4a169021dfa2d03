"""One governed invocation in its own process, for the cross-process commitments test:
``python loop_worker.py STORE_URL JOURNAL_DIR PIECES_JSON`` prints the result as JSON."""

from __future__ import annotations

import json
import sys

from aqcore.plugins import get_plugin_manager
from aqcore.policy import build_policy
from aqcore.runtime import Runtime
from aqcore.testing.scripted import ScriptedAdapter

POLICY = {
    "name": "commitments-worker",
    "metrics": {
        "commitments": {
            "extractors": [
                {"pattern": r"refund of \$?(?P<value>\d[\d,]*(?:\.\d\d)?)", "slot": "refund_amount"}
            ]
        }
    },
}


def main() -> None:
    store, journal, pieces = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    pm = get_plugin_manager()
    runtime = Runtime(
        adapter=ScriptedAdapter.from_pieces(pieces),
        policy=build_policy(POLICY, pm.metric_classes()),
        plugin_manager=pm,
        store=store,
        journal=journal,
    )
    with runtime:
        result = runtime.generate("about my refund", agent="support", conversation="ticket-1")
    print(
        json.dumps(
            {
                "text": result.text,
                "finish": result.finish_reason,
                "verdicts": result.verdicts,
                "state_status": result.state_status,
                "commitments": [c.model_dump() for c in result.commitments],
            }
        )
    )


if __name__ == "__main__":
    main()
