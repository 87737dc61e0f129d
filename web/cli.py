"""The `touchline` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from tqdm import tqdm

from capture import backup, imports, migrate, retention, rollups
from capture.db import Database, transaction
from capture.errors import DomainError, InvalidInput, NotFound
from capture.settings import Settings, SettingsError, load_settings
from reports.export import activities_csv, count_activities
from reports.periods import DateRange, parse_date, parse_range
from telephony import simulate
from web import models_cli, report_cli
from web.access_log import AccessLog, install_bad_request_filter

# The web application, the transcription engine, accounts and the demo are
# imported by the commands that use them: importing them all took about
# 1 s and 170 MB, which every export and import paid before its work.

log = logging.getLogger("touchline")

DEMO_CALLS = 8
IMPORT_BATCH = 1000
DEMO_MESSAGES = 6


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite logs every statement with its parameters at DEBUG, and those
    # parameters hold phone numbers.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    install_bad_request_filter()
    try:
        return int(args.run(args) or 0)
    except SettingsError as error:
        print(f"touchline: {error}", file=sys.stderr)
        return 2
    except DomainError as error:
        print(f"touchline: {error.message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="touchline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug lines")
    parser.add_argument(
        "--config", type=Path, help="settings file (default touchline.toml)"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="web, webhooks and an in-process worker")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="TCP port to listen on")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load the demo company and simulate a few calls against this server",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run no jobs in this process; `touchline worker` processes run them",
    )
    serve.set_defaults(run=run_serve)

    worker = commands.add_parser("worker", help="download and transcription worker")
    worker.set_defaults(run=run_worker)

    transcribe = commands.add_parser(
        "transcribe", help="transcribe stored recordings outside the job queue"
    )
    transcribe.add_argument(
        "--backfill",
        action="store_true",
        required=True,
        help="transcribe stored recordings that have no transcript",
    )
    transcribe.add_argument(
        "--from", dest="first", help="first day the recording was stored (ISO date)"
    )
    transcribe.add_argument(
        "--to", dest="last", help="last day the recording was stored (ISO date)"
    )
    transcribe.add_argument(
        "--redo",
        action="store_true",
        help="also replace the transcripts that exist",
    )
    transcribe.set_defaults(run=run_transcribe)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(run=run_upgrade)

    users = commands.add_parser("users", help="manage users").add_subparsers(
        required=True, metavar="ACTION"
    )
    add = users.add_parser("add", help="create a user")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument(
        "--role", required=True, choices=("rep", "manager", "ops", "admin")
    )
    add.add_argument("--phone", help="the rep's phone, any format")
    add.add_argument("--team", help="team name; created if new")
    add.add_argument("--client-identity", help="Twilio Client identity of the rep")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    add.set_defaults(run=run_users_add)

    tokens = commands.add_parser("tokens", help="API tokens").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = tokens.add_parser("create", help="print a new API token for a user")
    create.add_argument("--user", required=True, help="the user's email")
    create.add_argument("--label", default="", help="what the token is for")
    create.set_defaults(run=run_tokens_create)
    listing = tokens.add_parser("list", help="list a user's tokens, without secrets")
    listing.add_argument("--user", required=True, help="the user's email")
    listing.set_defaults(run=run_tokens_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by id or by secret")
    revoke_target = revoke.add_mutually_exclusive_group(required=True)
    revoke_target.add_argument(
        "--id", type=int, help="token id, as `tokens list` shows it"
    )
    revoke_target.add_argument(
        "--token-stdin", action="store_true", help="read the token secret from stdin"
    )
    revoke.set_defaults(run=run_tokens_revoke)

    commands.add_parser("demo", help="load the demo company").set_defaults(run=run_demo)

    sim = commands.add_parser("simulate", help="act as Twilio against a running server")
    simulate.add_arguments(sim)
    sim.set_defaults(run=run_simulate)

    keep = commands.add_parser(
        "retention",
        help="delete recordings and transcripts older than retention_days now",
    )
    keep.set_defaults(run=run_retention)

    backup_parser = commands.add_parser(
        "backup", help="copy the database and stored files into one tar file"
    )
    backup_parser.add_argument(
        "--output",
        type=Path,
        help="file to write (default touchline-backup-<UTC time>.tar here)",
    )
    backup_parser.set_defaults(run=run_backup)
    restore = commands.add_parser(
        "restore", help="restore a backup into data_dir; stop the service first"
    )
    restore.add_argument("archive", type=Path, help="a file written by backup")
    restore.add_argument(
        "--replace",
        action="store_true",
        help="move existing data aside to <data_dir>.before-restore-<time>",
    )
    restore.set_defaults(run=run_restore)

    importing = commands.add_parser("import", help="imports").add_subparsers(
        required=True, metavar="WHAT"
    )
    touches = importing.add_parser(
        "activities",
        help="touches from other channels (chat exports, meetings, old call logs)",
    )
    touches.add_argument("file", type=Path, help="CSV file; docs/imports.md")
    touches.add_argument(
        "--batch",
        type=int,
        default=IMPORT_BATCH,
        help=f"rows a transaction (default {IMPORT_BATCH})",
    )
    touches.set_defaults(run=run_import_activities)

    export = commands.add_parser("export", help="exports").add_subparsers(
        required=True, metavar="WHAT"
    )
    activities = export.add_parser("activities", help="the activity export as CSV")
    activities.add_argument("--from", dest="first", required=True, help="first day")
    activities.add_argument("--to", dest="last", required=True, help="last day")
    activities.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    activities.add_argument("-o", "--output", type=Path, help="file (default stdout)")
    activities.set_defaults(run=run_export_activities)
    report_cli.add_commands(export, commands)
    models_cli.add_commands(commands)
    return parser


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def run_transcribe(args: argparse.Namespace) -> int:
    from transcripts.backfill import backfill

    settings = settings_of(args)
    first = parse_date(args.first, "from") if args.first else None
    last = parse_date(args.last, "to") if args.last else None
    migrate.upgrade(settings.database_url, zone=settings.zone)
    summary = asyncio.run(backfill(settings, first, last, redo=args.redo))
    print(summary.line(), file=sys.stderr)
    return 1 if summary.failed else 0


def run_upgrade(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from web.app import create_app

    settings = settings_of(args)
    if args.demo:
        settings = _demo_settings(settings, args.port)
    migrate.upgrade(settings.database_url, zone=settings.zone)
    app = create_app(settings, run_worker=not args.no_worker, run_smtp=True)
    if args.demo:
        app.cleanup_ctx.append(_demo_context(settings, args.port))
    if not _port_free(args.host, args.port):
        print(
            f"touchline: {args.host}:{args.port} is in use; stop the other server "
            "or pass --port",
            file=sys.stderr,
        )
        return 1
    if settings.smtp_port and not _port_free(settings.smtp_host, settings.smtp_port):
        print(
            f"touchline: smtp_port {settings.smtp_host}:{settings.smtp_port} is in "
            "use; set another smtp_port, or 0 to start no SMTP listener",
            file=sys.stderr,
        )
        return 1
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        shutdown_timeout=30,
        access_log_class=AccessLog,
    )
    return 0


def _port_free(host: str, port: int) -> bool:
    """Check before start-up, so a taken port fails with a message, not a traceback."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _demo_settings(settings: Settings, port: int) -> Settings:
    """Sign the demo's webhooks for the port it serves on.

    The demo acts as Twilio against itself on loopback, so a loopback
    `public_url` must carry the port actually served, or every simulated
    webhook would fail its signature check.
    """
    parts = urlsplit(settings.public_url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port == port:
        return settings
    public_url = f"{parts.scheme}://{parts.hostname}:{port}"
    log.info("demo: public_url is %s to match --port", public_url)
    return dataclasses.replace(settings, public_url=public_url)


def _demo_context(
    settings: Settings, port: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Load the demo company, then simulate calls against this server."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        loaded = await _with_database(settings, _load_demo(settings))
        if not loaded:
            log.info("demo company already loaded; no calls simulated this time")
            yield
            return
        # With a loopback twilio_api_url the demo plays a click-to-call too.
        api_port = simulate.loopback_port(settings.twilio_api_url)
        token = ""
        if api_port is not None:
            token = await _with_database(settings, _demo_rep_token)
        options = simulate.SimulationOptions(
            url=f"http://127.0.0.1:{port}",
            auth_token=settings.twilio_auth_token,
            account_sid=settings.twilio_account_sid or simulate.DEFAULT_ACCOUNT_SID,
            work_dir=settings.data_dir / "demo-audio",
            calls=DEMO_CALLS,
            sms=DEMO_MESSAGES,
            unknown_callers=1,
            withheld_callers=1,
            click_to_calls=1 if token else 0,
            api_token=token,
            twilio_api_port=api_port or 0,
        )
        task = asyncio.create_task(_simulate_demo(options))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return context


async def _demo_rep_token(session: Any) -> str:
    """Create an API token for the first demo rep, who starts the click-to-call."""
    from capture.accounts import create_token
    from capture.demo_data import REPS as DEMO_REPS

    secret, _ = await create_token(session, DEMO_REPS[0].email, "demo simulation")
    return secret


async def _simulate_demo(options: simulate.SimulationOptions) -> None:
    # Startup contexts run before the socket opens, so wait for /healthz.
    async with aiohttp.ClientSession() as session:
        for _ in range(60):
            try:
                async with session.get(options.url + "/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    report = await simulate.run_simulation(options)
    log.info("demo simulation finished: %s", simulate.format_summary(report))


def run_worker(args: argparse.Namespace) -> int:
    from capture.writer import BatchWriter
    from reports import schedules
    from web.app import build_worker

    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)

    async def work() -> None:
        database = Database(settings.database_url)
        writer = BatchWriter(database.batch_sessions, zone=settings.zone)
        worker = build_worker(settings, database, writer)
        await writer.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        keeping = asyncio.create_task(
            retention.run_periodically(database.writes, settings, stop)
        )
        exporting = asyncio.create_task(
            schedules.run_periodically(database, settings, stop)
        )
        try:
            await worker.run(stop)
        finally:
            stop.set()
            await keeping
            await exporting
            await writer.stop()
            await database.dispose()

    asyncio.run(work())
    return 0


async def _with_database(
    settings: Settings, action: Callable[[Any], Awaitable[Any]]
) -> Any:
    database = Database(settings.database_url)
    try:
        async with transaction(database.writes) as session:
            return await action(session)
    finally:
        await database.dispose()


def _read_password(from_stdin: bool) -> str | None:
    """Read a new password from stdin or a prompt; None when none was given.

    An empty password leaves the user without one: they cannot log in until
    an admin sets a password, but their API tokens work.
    """
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        password = getpass.getpass("Password (empty for none): ")
        if password and getpass.getpass("Password again: ") != password:
            raise InvalidInput("the two passwords differ", "password")
    except EOFError:
        return None
    return password


def run_users_add(args: argparse.Namespace) -> int:
    from capture import audit
    from capture.accounts import add_user
    from capture.passwords import hash_password

    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)
    password = _read_password(args.password_stdin)
    if password is None:
        print("touchline: no password given; use --password-stdin", file=sys.stderr)
        return 2
    password_hash = hash_password(password) if password else None

    async def action(session: Any) -> Any:
        user = await add_user(
            session,
            email=args.email,
            name=args.name,
            role=args.role,
            default_region=settings.default_region,
            phone=args.phone,
            team=args.team,
            client_identity=args.client_identity,
            password_hash=password_hash,
        )
        detail = {"email": user.email, "role": user.role, "team": args.team}
        audit.record(
            session,
            audit.USER_CREATED,
            actor=None,
            target_type="user",
            target_id=user.id,
            detail={**detail, "via": "command line"},
        )
        return user

    user = asyncio.run(_with_database(settings, action))
    print(f"user {user.email} created with id {user.id}")
    if password_hash is None:
        print("no password set: the user cannot log in yet", file=sys.stderr)
    return 0


def run_tokens_create(args: argparse.Namespace) -> int:
    from capture import audit
    from capture.accounts import create_token

    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)

    async def action(session: Any) -> str:
        secret, token = await create_token(session, args.user, args.label)
        audit.record(
            session,
            audit.TOKEN_CREATED,
            actor=None,
            target_type="token",
            target_id=token.id,
            detail={"user_id": token.user_id, "via": "command line"},
        )
        return secret

    print(asyncio.run(_with_database(settings, action)))
    return 0


def run_tokens_list(args: argparse.Namespace) -> int:
    from capture.accounts import list_tokens

    settings = settings_of(args)
    tokens = asyncio.run(_with_database(settings, lambda s: list_tokens(s, args.user)))
    zone = settings.zone
    print("id\tprefix\tcreated\trevoked\tlabel")
    for token in tokens:
        created = token.created_at.astimezone(zone).isoformat(timespec="seconds")
        revoked = (
            token.revoked_at.astimezone(zone).isoformat(timespec="seconds")
            if token.revoked_at
            else "-"
        )
        prefix = f"{token.prefix}..." if token.prefix else "-"
        print(f"{token.id}\t{prefix}\t{created}\t{revoked}\t{token.label}")
    return 0


def run_tokens_revoke(args: argparse.Namespace) -> int:
    from capture import audit
    from capture.accounts import revoke_token_id, token_by_secret

    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)
    secret = sys.stdin.readline().strip() if args.token_stdin else None

    async def action(session: Any) -> int:
        if secret is not None:
            found = await token_by_secret(session, secret)
            if found is None:
                raise NotFound("no token matches the secret given", "token")
            token_id = found.id
        else:
            token_id = args.id
        token = await revoke_token_id(session, token_id)
        audit.record(
            session,
            audit.TOKEN_REVOKED,
            actor=None,
            target_type="token",
            target_id=token.id,
            detail={"user_id": token.user_id, "via": "command line"},
        )
        return token.id

    token_id = asyncio.run(_with_database(settings, action))
    print(f"token {token_id} revoked")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)
    loaded = asyncio.run(_with_database(settings, _load_demo(settings)))
    print("demo company loaded" if loaded else "demo company was already loaded")
    return 0


def _load_demo(settings: Settings) -> Callable[[Any], Awaitable[bool]]:
    """Load the demo company with every user's password set to DEMO_PASSWORD."""
    from capture.demo import load_demo
    from capture.demo_data import DEMO_PASSWORD
    from capture.passwords import hash_password

    password_hash = hash_password(DEMO_PASSWORD)

    async def action(session: Any) -> bool:
        return await load_demo(session, settings.default_region, password_hash)

    return action


def run_simulate(args: argparse.Namespace) -> int:
    settings: Settings | None
    try:
        settings = settings_of(args)
    except SettingsError:
        settings = None
    token = settings.twilio_auth_token if settings else None
    account_sid = settings.twilio_account_sid if settings else None
    api_url = settings.twilio_api_url if settings else None
    return simulate.main_from_args(args, token, account_sid, api_url)


def run_retention(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    migrate.upgrade(settings.database_url, zone=settings.zone)

    async def keep() -> retention.RetentionResult:
        database = Database(settings.database_url)
        try:
            days = await retention.retention_days(database.writes, settings)
            return await retention.apply_retention(
                database.writes, days=days, recordings_dir=settings.recordings_dir
            )
        finally:
            await database.dispose()

    result = asyncio.run(keep())
    print(
        f"{result.recordings} recordings past retention: {result.files} files and "
        f"{result.transcripts} transcripts deleted; "
        f"{result.webhook_requests} webhook ledger rows deleted",
        file=sys.stderr,
    )
    return 0


def run_backup(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    output = args.output or Path(backup.default_name())
    try:
        result = backup.create_backup(settings.data_dir, settings.database_url, output)
    except (OSError, sqlite3.Error) as error:
        # Nothing is left behind: the archive is renamed into place only when whole.
        print(f"touchline: backup failed: {error}", file=sys.stderr)
        return 1
    if result.database != "sqlite":
        print(
            "touchline: the database is not SQLite and is not in the backup; "
            "copy it with pg_dump (docs/operations.md)",
            file=sys.stderr,
        )
    print(
        f"backup written to {result.path}: database {result.database}, "
        f"{result.files} files, {result.bytes} bytes",
        file=sys.stderr,
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    result = backup.restore_backup(
        args.archive, settings.data_dir, settings.database_url, replace=args.replace
    )
    if result.database_restored:
        # A backup from an older release is brought up to this one's schema.
        migrate.upgrade(settings.database_url, zone=settings.zone)
    if result.previous is not None:
        print(f"earlier data moved to {result.previous}", file=sys.stderr)
    print(
        f"restored {result.files} files"
        + (" and the database" if result.database_restored else ""),
        file=sys.stderr,
    )
    return 0


def run_import_activities(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.batch < 1:
        print("touchline: --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"touchline: cannot read {args.file}: {error}", file=sys.stderr)
        return 1
    rows = imports.read_csv(text, settings.zone, settings.default_region)
    migrate.upgrade(settings.database_url, zone=settings.zone)
    database = Database(settings.database_url)
    sessions = database.batch_sessions()
    created = skipped = unmatched = 0
    try:
        with sessions() as session:
            imports.check_references(session, rows)
        with tqdm(total=len(rows), unit="rows", file=sys.stderr) as progress:
            # Transactions of `batch` rows keep the database free for the
            # webhooks of a running server. An interrupted import can be run
            # again: rows already imported are skipped.
            for start in range(0, len(rows), args.batch):
                chunk = rows[start : start + args.batch]
                with sessions() as session, session.begin():
                    result = imports.import_rows(session, chunk)
                    rollups.refresh_marked(session, settings.zone)
                created += result.created
                skipped += result.skipped
                unmatched += result.unmatched
                progress.update(len(chunk))
    finally:
        asyncio.run(database.dispose())
    print(
        f"{len(rows)} rows: {created} imported, {skipped} imported before, "
        f"{unmatched} with no customer",
        file=sys.stderr,
    )
    return 0


def run_export_activities(args: argparse.Namespace) -> int:
    if args.format == "xlsx":
        args.report, args.kind, args.period, args.team = "activities", None, None, None
        return report_cli.run_export(args)
    settings = settings_of(args)
    period = parse_range(args.first, args.last, settings.zone)
    rows = asyncio.run(_export_activities(settings, period, args.output))
    print(f"{rows} activities exported", file=sys.stderr)
    return 0


async def _export_activities(
    settings: Settings, period: DateRange, path: Path | None
) -> int:
    database = Database(settings.database_url)
    output = path.open("wb") if path else sys.stdout.buffer
    try:
        async with database.reads() as session:
            # The command line runs with database access, so it exports every
            # touch, with no viewer to limit it.
            total = await count_activities(session, period, None)
            with tqdm(total=total, unit="rows", file=sys.stderr) as progress:
                chunks = activities_csv(session, period, None, progress.update)
                async for chunk in chunks:
                    output.write(chunk)
                return int(progress.n)
    finally:
        if path:
            output.close()
        await database.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
