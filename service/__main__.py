"""Command line: `python -m service {migrate,serve,replay,schema-doc,sign}` (contract section 4)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from service import embedded, log, migrate, signing
from service.config import ConfigError, Settings


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the embedded Postgres under the data directory."""
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.data_dir)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = database_url(settings)
    migrate.upgrade(url, args.revision)
    structlog.get_logger("service").info("migrated", revision=args.revision)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only the serve command needs the server

    from service.app import create_app  # noqa: PLC0415

    settings.require_signing()
    url = database_url(settings)
    host = args.host or settings.host
    port = args.port or settings.port
    structlog.get_logger("service").info(
        "starting", **{**settings.describe(), "host": host, "port": port}
    )
    config = uvicorn.Config(
        create_app(settings, url),
        host=host,
        port=port,
        # The receiver logs one structured line per delivery; uvicorn's access log would
        # be a second, unstructured one.
        access_log=False,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=args.grace,
        server_header=False,
    )
    uvicorn.Server(config).run()
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild normalized tables from `events`, with a progress bar on a terminal."""
    import asyncio  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    from service import db, replay  # noqa: PLC0415

    url = database_url(settings)

    async def run() -> replay.Report:
        conn = await db.connect(url)
        try:
            total = await replay.count(conn, quarantined_only=args.quarantined)
            with tqdm(
                total=total,
                unit="event",
                disable=not sys.stderr.isatty(),
                desc="replay quarantined" if args.quarantined else "replay",
            ) as bar:
                return await replay.replay(
                    conn, quarantined_only=args.quarantined, progress=bar.update
                )
        finally:
            await conn.close()

    report = asyncio.run(run())
    print(
        f"replayed {report.events} events in {report.seconds:.2f} s "
        f"({report.rate:,.0f} events/s): {report.processed} processed, "
        f"{report.quarantined} quarantined, {len(report.newly_processed)} recovered "
        "from quarantine",
        file=sys.stderr,
    )
    return 0


def cmd_schema_doc(settings: Settings, args: argparse.Namespace) -> int:
    """Print docs/schema.md as the migrated database's comments describe it."""
    import asyncio  # noqa: PLC0415

    from service import db, schema_doc  # noqa: PLC0415

    url = database_url(settings)

    async def run() -> str:
        conn = await db.connect(url)
        try:
            return await schema_doc.render(conn)
        finally:
            await conn.close()

    sys.stdout.write(asyncio.run(run()))
    return 0


def cmd_sign(settings: Settings, args: argparse.Namespace) -> int:
    """Print the x-voucherify-signature for a file, as Voucherify would compute it."""
    if not settings.webhook_secrets:
        print("VOUCHERIFY_WEBHOOK_SECRET is not set", file=sys.stderr)
        return 2
    print(signing.sign(settings.webhook_secrets[0], Path(args.file).read_bytes()))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="upgrade the database schema (alembic) to the latest")
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("serve", help="serve the webhook endpoint, probes and metrics")
    p.add_argument("--host", default=None, help="bind address (default: HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: PORT or 8000)")
    p.add_argument(
        "--grace", type=int, default=20, help="seconds to finish in-flight deliveries on SIGTERM"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("replay", help="rebuild the normalized tables from the stored events")
    p.add_argument(
        "--quarantined", action="store_true", help="only retry quarantined (and unknown) events"
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("schema-doc", help="print docs/schema.md from the database's comments")
    p.set_defaults(func=cmd_schema_doc)

    p = sub.add_parser("sign", help="print the signature Voucherify would send for a body")
    p.add_argument("file", help="path to a JSON body")
    p.set_defaults(func=cmd_sign)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        log.configure(settings.log_level, settings.log_format)
        code: int = args.func(settings, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
