"""Voucherify webhook signatures: `x-voucherify-signature`.

Voucherify signs with HMAC-SHA256 (lowercase hex), keyed with the webhook secret, over the
JSON body with all whitespace outside strings removed. The raw bytes are accepted too, in
case a proxy or a future sender signs exactly what it sends. Several secrets may be valid at
once so a secret can be rotated without dropping deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

SIGNATURE_HEADER = "x-voucherify-signature"

# A JSON string (with its escapes), or a run of JSON whitespace outside any string.
_STRING_OR_WHITESPACE = re.compile(rb'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)


def compact(body: bytes) -> bytes:
    """The body with whitespace outside strings removed; strings are kept byte for byte."""
    return _STRING_OR_WHITESPACE.sub(rb"\1", body)


def sign(secret: str, body: bytes) -> str:
    """The signature Voucherify sends for `body` (used by tests, samples and benchmarks)."""
    return hmac.new(secret.encode(), compact(body), hashlib.sha256).hexdigest()


def verify(secrets: Sequence[str], body: bytes, signature: str | None) -> bool:
    """True when `signature` matches the body under any of the secrets.

    Every secret and both message forms are checked, with constant-time comparisons, so
    the time taken does not tell which secret or how much of the signature matched.
    """
    if not signature or not secrets:
        return False
    presented = signature.strip().lower().encode()
    messages = [body]
    compacted = compact(body)
    if compacted != body:
        messages.append(compacted)
    matched = False
    for secret in secrets:
        key = secret.encode()
        for message in messages:
            expected = hmac.new(key, message, hashlib.sha256).hexdigest().encode()
            matched |= hmac.compare_digest(expected, presented)
    return matched
