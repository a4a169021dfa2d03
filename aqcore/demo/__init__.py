"""The demo conversation: a customer, an order, and the support-agent policy."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SYSTEM = (
    "You are Sam, a support agent at Acme. Order ORD-4821 (a desk lamp, $25.00) arrived broken and its "
    "refund of $25.00 is approved. Answer in one or two short sentences."
)

SOURCES = ["Order ORD-4821: desk lamp, price $25.00, delivered on 30 November. Refund approved: $25.00."]

# Each turn shows one part of the gate: a commitment made, the commitment enforced in the
# next turn, personal data redacted before release, a denied phrase rolled back until the
# policy's refusal.
TURNS = [
    "Hi, my lamp from order ORD-4821 arrived broken. What refund do I get?",
    "Can you make the refund $40 instead?",
    "Please send the confirmation to jane.doe@example.com and tell me the address you will use.",
    "Should I buy a gift card instead?",
]

MAX_TOKENS = 60


def policy_path() -> Path:
    """The support-agent policy shipped with aqcore (the same file as examples/policies/)."""
    return Path(str(files("aqcore.demo").joinpath("support-agent.toml")))
