"""API keys for the exports API: `X-App-Id` / `X-App-Token` pairs from API_KEYS.

The webhook endpoint does not use these; it is authenticated by its signature alone.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence


def authenticate(keys: Sequence[tuple[str, str]], headers: Mapping[str, str]) -> str | None:
    """The app id of a matching key pair, else None.

    Every configured pair is compared, in constant time, whatever matched before, so the
    time taken tells nothing about which part of which key was right.
    """
    app_id = headers.get("x-app-id", "").encode()
    token = headers.get("x-app-token", "").encode()
    matched: str | None = None
    for known_id, known_token in keys:
        same_id = hmac.compare_digest(known_id.encode(), app_id)
        same_token = hmac.compare_digest(known_token.encode(), token)
        if same_id and same_token and app_id and token:
            matched = known_id
    return matched
