"""`GET /metrics`: counters in the Prometheus text format, for monitoring.

Twilio webhooks by endpoint and outcome (for the TwiML endpoints, the kind
of TwiML returned: `ring`, `fallback`, `voicemail`, `hangup`, `missed` or
`bridge`), and the batches and changes the database
writer committed, are counts since the process started. The job queue is
read from the database at each scrape: jobs by kind and status, and how
long the oldest job ready to run has waited. The figures hold no personal
data, so the endpoint is open like `/healthz`. A
deployment that exposes the service to the internet can block the path at
its proxy.
"""

from __future__ import annotations

from aiohttp import web

from capture import jobs
from capture.db import Database
from web.keys import DATABASE, WEBHOOKS, WRITER

CONTENT_TYPE = "text/plain"


async def metrics(request: web.Request) -> web.Response:
    webhooks = request.app[WEBHOOKS]
    writer = request.app[WRITER]
    lines = [
        "# HELP touchline_webhooks_total Twilio webhooks by endpoint and outcome.",
        "# TYPE touchline_webhooks_total counter",
    ]
    for (path, outcome), count in sorted(webhooks.outcomes.items()):
        lines.append(
            f'touchline_webhooks_total{{path="{path}",outcome="{outcome}"}} {count}'
        )
    lines += [
        "# HELP touchline_writer_batches_total Transactions the writer committed.",
        "# TYPE touchline_writer_batches_total counter",
        f"touchline_writer_batches_total {writer.batches}",
        "# HELP touchline_writer_changes_total Changes the writer took from its queue.",
        "# TYPE touchline_writer_changes_total counter",
        f"touchline_writer_changes_total {writer.items}",
    ]
    lines += await _queue_lines(request.app[DATABASE])
    return web.Response(
        text="\n".join(lines) + "\n", content_type=CONTENT_TYPE, charset="utf-8"
    )


async def _queue_lines(database: Database) -> list[str]:
    figures = await jobs.queue_figures(database.reads)
    lines = [
        "# HELP touchline_jobs Jobs in the queue by kind and status.",
        "# TYPE touchline_jobs gauge",
    ]
    for (kind, status), count in sorted(figures.counts.items()):
        lines.append(f'touchline_jobs{{kind="{kind}",status="{status}"}} {count}')
    lines += [
        "# HELP touchline_job_oldest_queued_seconds How long the oldest job "
        "ready to run has waited, by kind.",
        "# TYPE touchline_job_oldest_queued_seconds gauge",
    ]
    for kind, seconds in sorted(figures.oldest_queued_seconds.items()):
        lines.append(
            f'touchline_job_oldest_queued_seconds{{kind="{kind}"}} {seconds:.1f}'
        )
    return lines
