"""DSSE v1 envelopes signed with Ed25519.

PAE (pre-authentication encoding) per the DSSE v1 protocol::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the ASCII decimal byte length. aq writes the envelope itself as RFC 8785 canonical
JSON with exactly one signature, so each receipt has exactly one byte encoding and a changed
byte anywhere is detected (:func:`parse_envelope` refuses every other encoding).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import LineageError
from .canonical import canonical_ascii_strings, parse_canonical

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, body: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding of ``body`` with ``payload_type``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode standard padded base64, refusing any other spelling of the same bytes.

    Lenient decoders ignore stray characters and the unused low bits of the last symbol; an
    attacker could then change an envelope's bytes without changing what it says.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LineageError(f"{what} is not valid base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise LineageError(f"{what} is not canonical base64")
    return data


@dataclass(frozen=True)
class Envelope:
    """A parsed DSSE envelope with one signature."""

    payload_type: str
    payload: bytes
    keyid: str
    sig: bytes

    def to_bytes(self) -> bytes:
        """The canonical JSON bytes of the envelope."""
        return canonical_ascii_strings(
            {
                "payload": b64encode(self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"keyid": self.keyid, "sig": b64encode(self.sig)}],
            }
        )


def sign_envelope(
    payload: bytes, private_key: Ed25519PrivateKey, keyid: str, payload_type: str = PAYLOAD_TYPE
) -> Envelope:
    """Sign ``payload`` (Ed25519 over the PAE) and wrap it in an envelope."""
    return Envelope(payload_type, payload, keyid, private_key.sign(pae(payload_type, payload)))


def verify_signature(envelope: Envelope, public_key: Ed25519PublicKey) -> bool:
    """True if the envelope's signature is valid for ``public_key``."""
    try:
        public_key.verify(envelope.sig, pae(envelope.payload_type, envelope.payload))
    except InvalidSignature:
        return False
    return True


def parse_envelope(data: bytes) -> Envelope:
    """Parse envelope bytes, checking the exact shape and canonical encoding aq writes.

    :raises LineageError: naming what is malformed.
    """
    try:
        # Canonical form checked here, before the shape: then every record has one encoding.
        obj = parse_canonical(data)
    except LineageError as exc:
        raise LineageError(f"envelope is not RFC 8785 canonical JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != {"payload", "payloadType", "signatures"}:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise LineageError(f"envelope must have exactly payload, payloadType, signatures (got {keys})")
    sigs = obj["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1:
        raise LineageError("envelope must carry exactly one signature")
    sig = sigs[0]
    if not isinstance(sig, dict) or set(sig) != {"keyid", "sig"}:
        raise LineageError("envelope signature must have exactly keyid and sig")
    for name, value in (
        ("payload", obj["payload"]),
        ("payloadType", obj["payloadType"]),
        ("keyid", sig["keyid"]),
        ("sig", sig["sig"]),
    ):
        if not isinstance(value, str):
            raise LineageError(f"envelope field {name} must be a string")
    envelope = Envelope(
        payload_type=obj["payloadType"],
        payload=b64decode_strict(obj["payload"], "envelope payload"),
        keyid=sig["keyid"],
        sig=b64decode_strict(sig["sig"], "envelope signature"),
    )
    return envelope
