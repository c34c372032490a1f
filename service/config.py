"""Settings, read once from the environment (contract section 4)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

import msgspec


class ConfigError(Exception):
    """The environment does not describe a service that may start."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    allow_unsigned: bool = False
    api_keys: tuple[tuple[str, str], ...] = ()
    log_level: str = "INFO"
    log_format: str = "json"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # One JSON line per request from uvicorn, besides the receiver's own delivery line.
    access_log: bool = False
    max_body_bytes: int = 1024 * 1024
    # Request headers larger than this (all names and values together) get 431.
    max_header_bytes: int = 16 * 1024
    # A request line and headers not complete this long after the connection (or the
    # request's first byte) get 408 and a closed connection; see service/protocol.py.
    header_timeout_seconds: float = 10.0
    # A body that has not fully arrived by then gets 408 (slow clients hold no worker).
    body_timeout_seconds: float = 10.0
    # Voucherify gives up after 10 s; answering 503 well before that lets it retry cleanly.
    write_timeout_seconds: float = 5.0
    retry_after_seconds: int = 5
    db_pool_size: int = 10
    # Group commit: events per transaction at most, queued events at most (then 503),
    # and transactions in flight at once. One: while it commits the next batch gathers.
    # A second one took many batches of a few events, which cost Postgres the most per
    # event (measured in docs/performance.md, with Postgres on the same two cores).
    writer_max_batch: int = 500
    writer_queue_limit: int = 5000
    writer_concurrency: int = 1
    data_dir: Path = Path(".data")
    # Only these source networks may deliver webhooks (empty: any). The client address is
    # the peer's, or X-Forwarded-For's when the peer is in uvicorn's FORWARDED_ALLOW_IPS.
    allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    # Refuse events whose created_at is older than this (0: no limit): limits replays of a
    # captured, validly signed delivery. Keep it above Voucherify's two-day retry window.
    max_event_age_seconds: int = 0
    # customer.deleted also removes the customer's personal data (tables and raw payloads).
    redact_deleted_customers: bool = False
    export_token_ttl_seconds: int = 24 * 3600
    # Background export jobs in this process; off for processes that only receive webhooks.
    export_worker: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment; a value that cannot be used is a ConfigError
        naming the variable, at start, not a surprise under load."""
        env = os.environ if env is None else env
        read = _Reader(env)
        try:
            return cls(
                database_url=env.get("DATABASE_URL") or None,
                webhook_secrets=_split(env.get("VOUCHERIFY_WEBHOOK_SECRET", "")),
                allow_unsigned=read.flag("ALLOW_UNSIGNED_WEBHOOKS"),
                api_keys=tuple(_pair(item) for item in _split(env.get("API_KEYS", ""))),
                log_level=read.choice("LOG_LEVEL", "INFO", _LOG_LEVELS, str.upper),
                log_format=read.choice("LOG_FORMAT", "json", ("json", "console"), str.lower),
                host=env.get("HOST", "127.0.0.1"),
                port=read.whole("PORT", 8000, 0, 65535),
                workers=read.whole("WORKERS", 1, 1),
                access_log=read.flag("ACCESS_LOG"),
                max_body_bytes=read.whole("MAX_BODY_BYTES", 1024 * 1024, 1),
                max_header_bytes=read.whole("MAX_HEADER_BYTES", 16 * 1024, 1),
                header_timeout_seconds=read.seconds("HEADER_TIMEOUT_SECONDS", 10),
                body_timeout_seconds=read.seconds("BODY_TIMEOUT_SECONDS", 10),
                write_timeout_seconds=read.seconds("WRITE_TIMEOUT_SECONDS", 5),
                retry_after_seconds=read.whole("RETRY_AFTER_SECONDS", 5, 0),
                db_pool_size=read.whole("DB_POOL_SIZE", 10, 1),
                writer_max_batch=read.whole("WRITER_MAX_BATCH", 500, 1),
                writer_queue_limit=read.whole("WRITER_QUEUE_LIMIT", 5000, 1),
                writer_concurrency=read.whole("WRITER_CONCURRENCY", 1, 1),
                data_dir=Path(env.get("DATA_DIR", ".data")),
                export_token_ttl_seconds=read.whole("EXPORT_TOKEN_TTL_SECONDS", 24 * 3600, 1),
                allowed_networks=tuple(
                    ip_network(n) for n in _split(env.get("ALLOWED_SOURCE_NETWORKS", ""))
                ),
                max_event_age_seconds=read.whole("MAX_EVENT_AGE_SECONDS", 0, 0),
                redact_deleted_customers=read.flag("REDACT_DELETED_CUSTOMERS"),
                export_worker=not read.flag("DISABLE_EXPORT_WORKER"),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid setting: {exc}") from exc

    def require_pool(self) -> None:
        """Refuse to serve with a pool the writers and the export worker would use up
        (checked by `serve` only: other commands open a connection of their own).
        Each writer task keeps a connection. An export being produced holds two (its
        cursor, its file's chunks) and renews its lease on a third; without the export
        worker, probes and API requests need one."""
        others, why = (
            (3, "the export worker needs 3 (1 with DISABLE_EXPORT_WORKER=1)")
            if self.export_worker
            else (1, "probes and API requests need 1")
        )
        if self.db_pool_size < self.writer_concurrency + others:
            raise ConfigError(
                f"DB_POOL_SIZE ({self.db_pool_size}) must be at least WRITER_CONCURRENCY "
                f"({self.writer_concurrency}) + {others}: each writer keeps a connection of "
                f"the pool, and {why}"
            )

    def require_signing(self) -> None:
        """Refuse to serve an endpoint anyone on the internet could write into."""
        if not self.webhook_secrets and not self.allow_unsigned:
            raise ConfigError(
                "VOUCHERIFY_WEBHOOK_SECRET is not set. Set it to the secret shown in Voucherify's "
                "webhook settings, or set ALLOW_UNSIGNED_WEBHOOKS=1 for local use only."
            )

    def describe(self) -> dict[str, object]:
        """The effective configuration with secrets masked, for the start-up log line."""
        return {
            "database": _mask_url(self.database_url) if self.database_url else "embedded",
            "webhook_secrets": len(self.webhook_secrets),
            "allow_unsigned": self.allow_unsigned,
            "api_keys": [app_id for app_id, _ in self.api_keys],
            "host": self.host,
            "port": self.port,
            "workers": self.workers,
            "access_log": self.access_log,
            "max_body_bytes": self.max_body_bytes,
            "max_header_bytes": self.max_header_bytes,
            "header_timeout_seconds": self.header_timeout_seconds,
            "body_timeout_seconds": self.body_timeout_seconds,
            "write_timeout_seconds": self.write_timeout_seconds,
            "db_pool_size": self.db_pool_size,
            "writer_max_batch": self.writer_max_batch,
            "writer_queue_limit": self.writer_queue_limit,
            "writer_concurrency": self.writer_concurrency,
            "export_token_ttl_seconds": self.export_token_ttl_seconds,
            "allowed_networks": [str(n) for n in self.allowed_networks],
            "max_event_age_seconds": self.max_event_age_seconds,
            "redact_deleted_customers": self.redact_deleted_customers,
            "export_worker": self.export_worker,
        }


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class _Reader:
    """Typed, bounded reads of environment variables; each error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def whole(self, name: str, default: int, low: int, high: int | None = None) -> int:
        raw = self.env.get(name, str(default)).strip()
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{name} must be {bounds}, not {value}")
        return value

    def seconds(self, name: str, default: float) -> float:
        raw = self.env.get(name, str(default)).strip()
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{name} must be a number of seconds above 0, not {raw!r}")
        return value

    def flag(self, name: str) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if raw not in _TRUE + _FALSE:  # a typo must not silently mean "off"
            raise ValueError(f"{name} must be 1/true/yes/on or 0/false/no/off, not {raw!r}")
        return raw in _TRUE

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], normal: Callable[[str], str]
    ) -> str:
        value = normal(self.env.get(name, default).strip())
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return value


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _pair(item: str) -> tuple[str, str]:
    app_id, sep, token = item.partition(":")
    if not sep or not app_id or not token:
        raise ValueError("API_KEYS entries look like app_id:app_token")
    return app_id, token


def _mask_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{hostpart}"
