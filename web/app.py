"""The aiohttp application: `create_app` wires settings, resources and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware
from sqlalchemy import text

from capture import retention
from capture.db import Database
from capture.email_intake import EmailIntake
from capture.mms import DOWNLOAD_MEDIA_JOB
from capture.recordings import DOWNLOAD_JOB, TRANSCRIBE_JOB
from capture.settings import Settings
from capture.smtp import start_smtp
from capture.worker import Handler, Worker
from capture.writer import BatchWriter
from capture.writer_process import ProcessWriter
from reports import schedules
from telephony.mms import MediaDownloader
from telephony.recording_jobs import RecordingDownloader
from telephony.rest import TwilioCalls
from telephony.voice import VoiceRouting
from telephony.webhooks import TwilioWebhooks
from transcripts.jobs import Transcriber
from web import (
    account,
    admin,
    api,
    call_jobs,
    calling,
    comments_api,
    customer_value,
    deals_api,
    emails,
    i18n,
    imports_api,
    inbox,
    labels,
    ledger_pages,
    media,
    pages,
    plan_pages,
    plans_api,
    reports,
    review,
    review_api,
    schedule_pages,
    schedules_api,
    settings_admin,
    values_api,
)
from web.access import template_context
from web.auth import auth_middleware, security_headers, session_storage
from web.csrf import csrf_middleware
from web.daily import routes as daily_routes
from web.direct import direct_middleware
from web.display import is_withheld, phone_formatter
from web.email_inbound import EmailWebhooks
from web.errors import error_middleware
from web.inputs import input_middleware
from web.keys import (
    DATABASE,
    EMAIL_INTAKE,
    SETTINGS,
    SMTP_SERVER,
    TWILIO_CALLS,
    WEBHOOKS,
    WORKER,
    WRITER,
)
from web.metrics import metrics
from web.organisation import routes as organisation_routes
from web.runtime import RUNTIME, RuntimeSettings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Webhook and API bodies are small; recordings are fetched, never uploaded.
MAX_BODY_BYTES = 1024 * 1024


def job_handlers(
    settings: Settings, database: Database, writer: BatchWriter
) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {
        DOWNLOAD_JOB: RecordingDownloader(settings, database, writer),
        DOWNLOAD_MEDIA_JOB: MediaDownloader(settings, database, writer),
    }
    if settings.transcribe_engine != "none":
        handlers[TRANSCRIBE_JOB] = Transcriber(settings, database, writer)
    return handlers


def build_worker(settings: Settings, database: Database, writer: BatchWriter) -> Worker:
    return Worker(
        database.writes,
        job_handlers(settings, database, writer),
        concurrency=settings.worker_concurrency,
        probe_sessions=database.reads,
    )


def new_writer(settings: Settings, database: Database) -> BatchWriter:
    if settings.webhook_writer == "process":
        return ProcessWriter(
            database.batch_sessions, settings.database_url, zone=settings.zone
        )
    return BatchWriter(database.batch_sessions, zone=settings.zone)


def create_app(
    settings: Settings, *, run_worker: bool = True, run_smtp: bool = False
) -> web.Application:
    """Wire the application; `run_smtp` starts the SMTP capture listener too."""
    # Order matters: errors are rendered outermost, the session is loaded
    # and saved around the CSRF check, and the user is known before a handler.
    app = web.Application(
        middlewares=[
            direct_middleware,
            i18n.locale_middleware,
            error_middleware,
            input_middleware,
            session_middleware(session_storage(settings)),
            csrf_middleware,
            auth_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    database = Database(settings.database_url)
    writer = new_writer(settings, database)
    worker = build_worker(settings, database, writer)
    app[SETTINGS] = settings
    app[DATABASE] = database
    app[WRITER] = writer
    app[WORKER] = worker
    app[RUNTIME] = RuntimeSettings(settings, database)
    app[TWILIO_CALLS] = TwilioCalls(settings)
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("web", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        context_processors=[template_context],
        extensions=["jinja2.ext.i18n"],
    )
    i18n.install(environment)
    environment.filters["label"] = labels.label_filter
    environment.filters["phone"] = phone_formatter(settings.default_region)
    environment.globals["is_withheld"] = is_withheld
    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_writer)
    if run_worker:
        app.cleanup_ctx.append(_worker)
    if run_smtp and settings.smtp_port:
        app.cleanup_ctx.append(_smtp)
    app.router.add_get("/healthz", healthz)
    webhooks = TwilioWebhooks(settings, writer, worker.notify)
    app[WEBHOOKS] = webhooks
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(webhooks.routes())
    voice_routing = VoiceRouting(settings, database, writer, webhooks.outcomes)
    app.router.add_routes(voice_routing.routes())
    intake = EmailIntake(settings, writer)
    app[EMAIL_INTAKE] = intake
    app.router.add_routes(EmailWebhooks(settings, intake).routes())
    app.router.add_routes(emails.routes)
    app.router.add_routes(api.routes)
    app.router.add_routes(calling.routes)
    app.router.add_routes(call_jobs.routes)
    app.router.add_routes(values_api.routes)
    app.router.add_routes(plans_api.routes)
    app.router.add_routes(plan_pages.routes)
    app.router.add_routes(deals_api.routes)
    app.router.add_routes(schedules_api.routes)
    app.router.add_routes(schedule_pages.routes)
    app.router.add_routes(customer_value.routes)
    app.router.add_routes(inbox.routes)
    app.router.add_routes(imports_api.routes)
    app.router.add_routes(settings_admin.routes)
    app.router.add_routes(account.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(organisation_routes)
    app.router.add_routes(daily_routes)
    app.router.add_routes(review_api.routes)
    app.router.add_routes(comments_api.routes)
    app.router.add_routes(review.routes)
    app.router.add_routes(reports.routes)
    app.router.add_routes(pages.routes)
    app.router.add_routes(ledger_pages.routes)
    app.router.add_routes(media.routes)
    app.router.add_static("/static", STATIC)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[DATABASE].dispose()


async def _writer(app: web.Application) -> AsyncIterator[None]:
    await app[WRITER].start()
    yield
    await app[WRITER].stop()


async def _worker(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(app[WORKER].run(stop), name="worker")
    keeping = asyncio.create_task(
        retention.run_periodically(app[DATABASE].writes, app[SETTINGS], stop),
        name="retention",
    )
    exporting = asyncio.create_task(
        schedules.run_periodically(app[DATABASE], app[SETTINGS], stop),
        name="scheduled-exports",
    )
    yield
    stop.set()
    await keeping
    await exporting
    try:
        await asyncio.wait_for(task, timeout=30)
    except TimeoutError:
        log.warning("worker did not stop within 30 s; its jobs will be retried")
    for handler in app[WORKER].handlers.values():
        close = getattr(handler, "close", None)
        if close is not None:
            close()


async def _smtp(app: web.Application) -> AsyncIterator[None]:
    server = await start_smtp(app[SETTINGS], app[EMAIL_INTAKE])
    app[SMTP_SERVER] = server
    yield
    server.close()
    await server.wait_closed()
    log.info("smtp listener stopped")


async def healthz(request: web.Request) -> web.Response:
    try:
        async with request.app[DATABASE].reads() as session:
            await session.execute(text("SELECT 1"))
    except Exception as error:
        log.warning("health check failed: %r", error)
        return web.json_response({"status": "database unavailable"}, status=503)
    return web.json_response({"status": "ok"})
