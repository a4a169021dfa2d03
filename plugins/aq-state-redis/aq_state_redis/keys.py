"""The Redis key layout of aq's state keys and lineage chains (which aqcore.state.keys
validates)."""

from __future__ import annotations

import re

from aqcore.errors import UsageError
from aqcore.state.keys import check_chain, check_state_key, tenant_of

__all__ = ["check_chain", "check_state_key", "tenant_of"]

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CHAIN = re.compile(r"[A-Za-z0-9._@-]{1,128}:[A-Za-z0-9._@-]{1,128}:[A-Za-z0-9._@-]{1,128}")


# -- Redis layout ---------------------------------------------------------------------------------
# Every Redis key is ``aq:{<ids>}:<what>``. The braces are a Redis Cluster hash tag: the state of a
# conversation, its receipts stream and its chain head share one slot, so one Lua script may touch
# them together. The tenant is always the first id inside the tag.
_SCOPE_KINDS = ("agent", "conversation")
_SAFE_PREFIX = re.compile(r"[A-Za-z0-9._@:-]*")


def state_storage_key(key: str) -> str:
    """The Redis key of a state key (``conversation/t:a:c`` -> ``aq:{t:a:c}:state``)."""
    kind, _, path = check_state_key(key).partition("/")
    return f"aq:{{{path}}}:state" if kind in _SCOPE_KINDS else f"aq:{{{path}}}:state:{kind}"


def state_key_of(storage: str) -> str | None:
    """The state key a Redis key holds, or None for a key that is not aq state."""
    if not storage.startswith("aq:{") or "}" not in storage:
        return None
    path, _, rest = storage[4:].partition("}")
    if rest == ":state":
        kind = {2: "agent", 3: "conversation"}.get(path.count(":") + 1)
    elif rest.startswith(":state:"):
        kind = rest[len(":state:") :]
        if kind in _SCOPE_KINDS:
            return None
    else:
        return None
    if kind is None:
        return None
    try:
        return check_state_key(f"{kind}/{path}")
    except UsageError:
        return None


def state_scan_pattern(prefix: str) -> str:
    """A SCAN MATCH pattern covering every Redis key whose state key may start with ``prefix``
    (the caller still filters: the pattern only narrows the scan)."""
    kind, sep, path = prefix.partition("/")
    if not sep or not _KIND.fullmatch(kind) or not _SAFE_PREFIX.fullmatch(path):
        return "aq:{*}:state*"
    return f"aq:{{{path}*}}:state" if kind in _SCOPE_KINDS else f"aq:{{{path}*}}:state:{kind}"


def chain_keys(chain: str) -> tuple[str, str]:
    """The receipts stream and the head key of a chain."""
    check_chain(chain)
    return f"aq:{{{chain}}}:receipts", f"aq:{{{chain}}}:head"


def chain_of(storage: str) -> str | None:
    """The chain a head key belongs to, or None."""
    if not (storage.startswith("aq:{") and storage.endswith("}:head")):
        return None
    chain = storage[4 : -len("}:head")]
    return chain if _CHAIN.fullmatch(chain) else None


def chain_scan_pattern(prefix: str) -> str:
    """A SCAN MATCH pattern covering the head keys of chains starting with ``prefix``."""
    return f"aq:{{{prefix}*}}:head" if _SAFE_PREFIX.fullmatch(prefix) else "aq:{*}:head"
