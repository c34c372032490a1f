"""Voucherify's signature rule: HMAC-SHA256, hex, over the JSON without whitespace."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from service import signing

PAYLOAD = {
    "id": "evcus_0c150c51730c6b60b1",
    "type": "customer.created",
    "data": {"customer": {"name": 'Ann  "The" Smith\t', "note": "a, b: {c} [d]", "ą": "żółw"}},
    "n": [1, 2.5, -3e2, True, None],
}


def voucherify_signature(secret: str, payload: object) -> str:
    """The rule as Voucherify documents it: JSON.stringify(payload), HMAC-SHA256, hex."""
    message = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("indent", [None, 2, 4, "\t"])
def test_pretty_printed_bodies_verify_against_voucherifys_compact_signature(
    indent: int | str | None,
) -> None:
    """Whitespace outside strings is ignored; whitespace inside strings is signed."""
    body = json.dumps(PAYLOAD, indent=indent, ensure_ascii=False).encode()
    signature = voucherify_signature("whsec", PAYLOAD)
    assert signing.verify(["whsec"], body, signature)
    assert signing.sign("whsec", body) == signature


def test_compact_keeps_strings_byte_for_byte() -> None:
    body = b'{ "a" : "x  y\\" z" ,\n "b" : [ 1 , 2 ] }'
    assert signing.compact(body) == b'{"a":"x  y\\" z","b":[1,2]}'


def test_a_signature_over_the_raw_bytes_is_accepted_as_fallback() -> None:
    """Whatever a sender signs exactly as sent also verifies, e.g. non-canonical spacing."""
    body = b'{"id": "evcus_1", "type": "customer.created"}'
    raw_signature = hmac.new(b"whsec", body, hashlib.sha256).hexdigest()
    assert signing.verify(["whsec"], body, raw_signature)


def test_uppercase_hex_and_surrounding_space_are_tolerated() -> None:
    body = b'{"id":"evcus_1"}'
    assert signing.verify(["whsec"], body, f"  {signing.sign('whsec', body).upper()} ")


def test_any_configured_secret_verifies_and_no_other() -> None:
    body = b'{"id":"evcus_1"}'
    assert signing.verify(["new", "old"], body, signing.sign("old", body))
    assert signing.verify(["new", "old"], body, signing.sign("new", body))
    assert not signing.verify(["new", "old"], body, signing.sign("other", body))


@pytest.mark.parametrize("signature", [None, "", "abc", "0" * 64])
def test_missing_or_wrong_signatures_fail_closed(signature: str | None) -> None:
    assert not signing.verify(["whsec"], b"{}", signature)


def test_no_secrets_verifies_nothing() -> None:
    """Fail closed: an empty secret list never accepts, even a signature made with ''."""
    assert not signing.verify([], b"{}", signing.sign("", b"{}"))


def test_a_changed_string_value_breaks_the_signature() -> None:
    body = json.dumps(PAYLOAD).encode()
    signature = signing.sign("whsec", body)
    assert not signing.verify(["whsec"], body.replace(b"Smith", b"Smyth"), signature)
