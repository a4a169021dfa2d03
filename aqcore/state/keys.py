"""Store keys. Every key starts with its kind and then the tenant, so tenants never share one.

A state key is ``<kind>/<tenant>:<id>...`` (``agent/<tenant>:<agent>``,
``conversation/<tenant>:<agent>:<conversation>``); a lineage chain is
``<tenant>:<agent>:<conversation>``. Ids use the characters aq allows in a scope (letters,
digits, ``-_.@``), so a key can hold no separator, wildcard or control byte that would let one
tenant's key reach another's. Stores check every key they are given with the functions below.
"""

from __future__ import annotations

import re

from ..errors import UsageError
from ..models import Scope

AGENT = "agent"
CONVERSATION = "conversation"


def agent_key(scope: Scope) -> str:
    return f"{AGENT}/{scope.agent_key}"


def conversation_key(scope: Scope) -> str:
    return f"{CONVERSATION}/{scope.conversation_key}"


def tenant_prefix(kind: str, tenant: str) -> str:
    return f"{kind}/{tenant}:"


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
