"""Store keys. Every key starts with its kind and then the tenant, so tenants never share one."""

from __future__ import annotations

from ..models import Scope

AGENT = "agent"
CONVERSATION = "conversation"


def agent_key(scope: Scope) -> str:
    return f"{AGENT}/{scope.agent_key}"


def conversation_key(scope: Scope) -> str:
    return f"{CONVERSATION}/{scope.conversation_key}"


def tenant_prefix(kind: str, tenant: str) -> str:
    return f"{kind}/{tenant}:"
