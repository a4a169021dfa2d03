"""Validation of state keys and chain names.

A state key is ``<kind>/<tenant>:<id>...`` (``agent/<tenant>:<agent>``,
``conversation/<tenant>:<agent>:<conversation>``); a chain is ``<tenant>:<agent>:<conversation>``.
Ids use the characters aq allows in a scope (letters, digits, ``-_.@``), so a key can hold no
separator, wildcard or control byte that would let one tenant's key reach another's.
"""

from __future__ import annotations

import re

from aqcore.errors import UsageError

_ID = r"[A-Za-z0-9._@-]{1,128}"
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ID_PATH = re.compile(rf"{_ID}(?::{_ID})*")
_CHAIN = re.compile(rf"{_ID}:{_ID}:{_ID}")
# Kinds aq itself uses, with the number of ids their keys hold.
_ARITY = {"agent": 2, "conversation": 3}


def check_state_key(key: str) -> str:
    """Return ``key`` if it is a well-formed state key, else raise :class:`UsageError`."""
    if not isinstance(key, str):
        raise UsageError(f"state key must be a string, got {type(key).__name__}")
    kind, sep, path = key.partition("/")
    if not sep or not _KIND.fullmatch(kind) or not _ID_PATH.fullmatch(path):
        raise UsageError(
            f"malformed state key {key!r}: expected <kind>/<tenant>:<id>... with ids of letters, "
            "digits and -_.@ (e.g. 'conversation/acme:support:c1')"
        )
    want = _ARITY.get(kind)
    if want is not None and path.count(":") + 1 != want:
        raise UsageError(f"malformed state key {key!r}: a {kind!r} key holds {want} ids separated by ':'")
    return key


def check_chain(chain: str) -> str:
    """Return ``chain`` if it is ``<tenant>:<agent>:<conversation>``, else raise :class:`UsageError`."""
    if not isinstance(chain, str) or not _CHAIN.fullmatch(chain):
        raise UsageError(
            f"malformed lineage chain {chain!r}: expected <tenant>:<agent>:<conversation> with ids of "
            "letters, digits and -_.@"
        )
    return chain


def tenant_of(key: str) -> str:
    """The tenant of a validated state key or chain."""
    return key.partition("/")[2].split(":", 1)[0] if "/" in key else key.split(":", 1)[0]


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
