"""DSSE v1: PAE, signing, and the single canonical envelope encoding."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aqcore.errors import LineageError
from aqcore.lineage.dsse import PAYLOAD_TYPE, Envelope, pae, parse_envelope, sign_envelope, verify_signature


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("é", b"x") == "DSSEv1 2 é 1 x".encode()  # lengths in bytes


def test_sign_parse_verify_round_trip() -> None:
    key = Ed25519PrivateKey.generate()
    env = sign_envelope(b'{"a":1}', key, "kid")
    data = env.to_bytes()
    back = parse_envelope(data)
    assert back == env
    assert verify_signature(back, key.public_key())
    assert not verify_signature(back, Ed25519PrivateKey.generate().public_key())
    swapped = Envelope("application/json", env.payload, env.keyid, env.sig)
    assert not verify_signature(swapped, key.public_key())  # the type is signed too
    assert json.loads(data)["payloadType"] == PAYLOAD_TYPE


def _env(**over: object) -> bytes:
    obj = {
        "payload": base64.b64encode(b"{}").decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": "k", "sig": base64.b64encode(b"s" * 64).decode()}],
    }
    obj.update(over)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"nope", "not valid JSON"),
        (_env(extra=1), "exactly payload"),
        (_env(signatures=[]), "exactly one signature"),
        (_env(signatures=[{"keyid": "k", "sig": "AA==", "x": 1}]), "keyid and sig"),
        (_env(payload=5), "must be a string"),
        (_env(payload="e30"), "not valid base64"),  # missing padding
        (_env(payload="e31="), "not canonical base64"),  # unused low bits set
        (_env().replace(b'","', b'", "', 1), "not RFC 8785"),
    ],
)
def test_parse_refuses_malformed_envelopes(data: bytes, why: str) -> None:
    with pytest.raises(LineageError, match=why):
        parse_envelope(data)
