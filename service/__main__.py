"""Command line: `python -m service <command>`; `--help` lists them (contract section 4)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from service import embedded, log, migrate, signing
from service.config import ConfigError, Settings
from service.exports.catalog import OBJECTS


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

    from service.app import create_app, settle_heap  # noqa: PLC0415
    from service.protocol import protocol_for  # noqa: PLC0415

    settings.require_signing()
    settings.require_pool()
    url = database_url(settings)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port  # 0: any free port
    structlog.get_logger("service").info(
        "starting", **{**settings.describe(), "host": host, "port": port}
    )
    common = {
        "host": host,
        "port": port,
        # The receiver logs one structured line per delivery; uvicorn's access log would
        # be a second, unstructured one.
        "access_log": settings.access_log,
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": args.grace,
        "server_header": False,
        # httptools with time and size bounds on each request head (slow clients).
        "http": protocol_for(settings),
    }
    workers = args.workers or settings.workers
    if workers > 1:
        # Each worker imports the app factory; they share the port and the database.
        structlog.get_logger("service").warning(
            "metrics are per worker",
            workers=workers,
            detail="each GET /metrics reaches one worker: for whole counters run one worker "
            "per container and scale containers (docs/operations.md)",
        )
        os.environ["DATABASE_URL"] = url
        uvicorn.run("service.app:from_env", factory=True, workers=workers, **common)
        return 0
    app = create_app(settings, url)
    settle_heap()
    uvicorn.Server(uvicorn.Config(app, **common)).run()
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
                    conn,
                    quarantined_only=args.quarantined,
                    progress=bar.update,
                    redact_deleted=settings.redact_deleted_customers,
                )
        finally:
            await conn.close()

    try:
        report = asyncio.run(run())
    except (replay.EventsDropped, replay.KeptFileUnreadable) as exc:
        print(f"error: nothing changed: {exc}", file=sys.stderr)
        return 1
    except db.REFUSED_OR_UNAVAILABLE as exc:  # one transaction: all or none
        print(f"error: replay undone, nothing changed: {type(exc).__name__}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    structlog.get_logger("service").info(
        "replayed",
        events=report.events,
        seconds=round(report.seconds, 2),
        processed=report.processed,
        unknown_type=report.unknown,
        quarantined=report.quarantined,
        recovered=len(report.newly_processed),
        files=report.files,
    )
    print(
        f"replayed {report.events} events in {report.seconds:.2f} s "
        f"({report.rate:,.0f} events/s): {report.processed} processed "
        f"({report.unknown} of a type this release does not know, stored raw only), "
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


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """Write an export's CSV to stdout or a file, exactly as the API would produce it."""
    import asyncio  # noqa: PLC0415

    from service import db  # noqa: PLC0415
    from service.exports.jobs import stream_csv  # noqa: PLC0415
    from service.exports.query import InvalidExport, validate  # noqa: PLC0415

    parameters: dict[str, object] = {}
    if args.fields:
        parameters["fields"] = [f.strip() for f in args.fields.split(",") if f.strip()]
    if args.order:
        parameters["order"] = args.order
    if args.filter:
        try:
            parameters["filters"] = _filters(args.filter, args.junction)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        export = validate(args.object, parameters)
    except InvalidExport as exc:
        print(f"error: {exc.key}: {exc.details}", file=sys.stderr)
        return 2
    url = database_url(settings)
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115

    async def run() -> int:
        conn = await db.connect(url)
        try:

            async def sink(data: bytes) -> None:
                out.write(data)

            return await stream_csv(conn, export, sink)
        finally:
            await conn.close()

    try:
        rows = asyncio.run(run())
    finally:
        if args.output:
            out.close()
    print(f"exported {rows} {args.object} rows", file=sys.stderr)
    return 0


def _filters(specs: list[str], junction: str) -> dict[str, object]:
    """--filter as JSON (exports.json's `filters`), or FIELD:OPERATOR:V1,V2 (one per flag)."""
    import json  # noqa: PLC0415

    filters: dict[str, object] = {"junction": junction}
    for spec in specs:
        if spec.lstrip().startswith("{"):
            filters.update(json.loads(spec))
            continue
        key, sep, rest = spec.partition(":")
        operator, sep2, values = rest.partition(":")
        if not sep or not key or not operator:
            raise ValueError(f"--filter {spec!r}: use FIELD:OPERATOR:VALUE[,VALUE] or JSON")
        operator = operator if operator.startswith("$") else f"${operator}"
        condition = filters.setdefault(key, {"conditions": {}})
        assert isinstance(condition, dict)
        condition["conditions"][operator] = values.split(",") if sep2 and values else []
    return filters


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Load a Voucherify export CSV into the tables, never over newer webhook data."""
    import asyncio  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    from service import db  # noqa: PLC0415
    from service.exports.importer import ImportError_, load  # noqa: PLC0415

    path = Path(args.file)
    url = database_url(settings)
    with path.open("rb") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)

    async def run() -> tuple[int, list[str]]:
        conn = await db.connect(url)
        try:
            with tqdm(total=total, unit="row", disable=not sys.stderr.isatty()) as bar:
                return await load(conn, args.object, path, progress=bar.update)
        finally:
            await conn.close()

    try:
        rows, skipped = asyncio.run(run())
    except ImportError_ as exc:
        print(f"error: {path.name}: {exc}", file=sys.stderr)
        return 1
    except db.REFUSED_OR_UNAVAILABLE as exc:  # one transaction: all or none
        print(f"error: {path.name}: nothing loaded: {type(exc).__name__}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    note = f" (export-only columns not loaded: {', '.join(skipped)})" if skipped else ""
    print(f"imported {rows} {args.object} rows from {path.name}{note}", file=sys.stderr)
    return 0


def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    """Drop months of raw events older than --keep-months (archive them first)."""
    import asyncio  # noqa: PLC0415

    from service import db, partitions  # noqa: PLC0415

    url = database_url(settings)

    async def run() -> list[str]:
        conn = await db.connect(url)
        try:
            return await partitions.drop_old(conn, args.keep_months, dry_run=not args.yes)
        finally:
            await conn.close()

    old = asyncio.run(run())
    verb = "dropped" if args.yes else "would drop (add --yes)"
    print(f"{verb}: {', '.join(old) or 'nothing'}", file=sys.stderr)
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
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: WORKERS or 1)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("replay", help="rebuild the normalized tables from the stored events")
    p.add_argument(
        "--quarantined", action="store_true", help="only retry quarantined (and unknown) events"
    )
    p.set_defaults(func=cmd_replay)

    objects = list(OBJECTS)
    p = sub.add_parser("export", help="write a Voucherify-style CSV export to stdout or a file")
    p.add_argument("object", choices=objects)
    p.add_argument("--fields", help="comma-separated fields (default: Voucherify's defaults)")
    p.add_argument(
        "--filter",
        action="append",
        help="FIELD:OPERATOR:VALUE[,VALUE] (e.g. status:in:PAID,FULFILLED) or filters JSON",
    )
    p.add_argument("--junction", choices=["and", "or"], default="and")
    p.add_argument("--order", help="e.g. -created_at")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="load a Voucherify export CSV into the tables")
    p.add_argument("object", choices=objects)
    p.add_argument("file", help="the CSV file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("retention", help="drop months of raw events older than --keep-months")
    p.add_argument("--keep-months", type=_months, required=True,
                   help="months to keep, this one too (at least 1)")  # fmt: skip
    p.add_argument("--yes", action="store_true", help="really drop (default: say what would go)")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("schema-doc", help="print docs/schema.md from the database's comments")
    p.set_defaults(func=cmd_schema_doc)

    p = sub.add_parser("sign", help="print the signature Voucherify would send for a body")
    p.add_argument("file", help="path to a JSON body")
    p.set_defaults(func=cmd_sign)
    return root


def _months(text: str) -> int:
    months = int(text)
    if months < 1:
        raise argparse.ArgumentTypeError("at least 1: the current month is always kept")
    return months


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        log.configure(settings.log_level, settings.log_format)
        code: int = args.func(settings, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file to read or write that is not there, a port taken
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
