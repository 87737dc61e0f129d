"""`GET /metrics`: counters in the Prometheus text format, for monitoring.

The figures are counts since the process started: webhooks by endpoint and
outcome, and the batches and changes the database writer committed. They
hold no personal data, so the endpoint is open like `/healthz`. A
deployment that exposes the service to the internet can block the path at
its proxy.
"""

from __future__ import annotations

from aiohttp import web

from web.keys import WEBHOOKS, WRITER

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
    return web.Response(
        text="\n".join(lines) + "\n", content_type=CONTENT_TYPE, charset="utf-8"
    )
