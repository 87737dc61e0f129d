"""The `touchline simulate` command line: options, auth token and exit status."""

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from telephony.simulate.options import (
    DEFAULT_ACCOUNT_SID,
    WITHHELD_NUMBER,
    SimulationOptions,
)
from telephony.simulate.report import format_summary
from telephony.simulate.run import run_simulation

AUTH_TOKEN_ENV = "TOUCHLINE_TWILIO_AUTH_TOKEN"
API_TOKEN_ENV = "TOUCHLINE_API_TOKEN"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `touchline simulate` options to parser."""
    parser.add_argument(
        "--url",
        required=True,
        help="base URL of the Touchline server, for example http://127.0.0.1:8080. "
        "Webhooks are signed against this URL plus the webhook path.",
    )
    parser.add_argument("--calls", type=int, default=20, help="number of calls")
    parser.add_argument("--sms", type=int, default=10, help="number of SMS messages")
    parser.add_argument(
        "--mms",
        type=int,
        default=2,
        help="number of inbound MMS messages, each with a PNG picture and every "
        "second one also with a vCard (default 2)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="maximum webhook requests per second, or 0 for no limit (default 5)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed that fixes the scenario"
    )

    parser.add_argument(
        "--auth-token",
        help=f"Twilio auth token that signs the webhooks (default: ${AUTH_TOKEN_ENV}, "
        "then the configured server token)",
    )
    parser.add_argument(
        "--report", type=Path, help="write the JSON report to this file"
    )
    parser.add_argument(
        "--click-to-calls",
        type=int,
        help="click-to-calls to play through the Twilio API stand-in (default: 1 "
        "with an API token, else 0)",
    )
    parser.add_argument(
        "--api-token",
        help=f"a rep's API token that starts the click-to-calls (default: "
        f"${API_TOKEN_ENV})",
    )
    parser.add_argument(
        "--twilio-api-port",
        type=int,
        help="port of the Twilio API stand-in on 127.0.0.1; the server's "
        "twilio_api_url must be http://127.0.0.1:PORT (default: the port of the "
        "configured twilio_api_url when it is a loopback URL)",
    )

    parser.add_argument(
        "--unknown-callers",
        type=int,
        help="calls from numbers no customer owns (default: one per 10 calls)",
    )
    parser.add_argument(
        "--withheld-callers",
        type=int,
        help=f"calls from the withheld number {WITHHELD_NUMBER} "
        "(default: one per 20 calls)",
    )
    parser.add_argument(
        "--account-sid",
        default=None,
        help="AccountSid to send (default: the server's twilio_account_sid setting)",
    )

    parser.add_argument(
        "--media-host",
        default="127.0.0.1",
        help="host name in RecordingUrl, as the server reaches this machine",
    )
    parser.add_argument(
        "--media-port",
        type=int,
        default=0,
        help="port of the recording media server (default: any free port)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="directory for recording WAVs (default: a temporary directory)",
    )
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the server to fetch every recording (default 60)",
    )
    parser.add_argument(
        "--not-ready-requests",
        type=int,
        default=0,
        help="return 404 to the first N media requests of each recording (default 0)",
    )


def main_from_args(
    args: argparse.Namespace,
    settings_auth_token: str | None,
    settings_account_sid: str | None = None,
    settings_twilio_api_url: str | None = None,
) -> int:
    """Run `touchline simulate` and return the exit status.

    Returns 0 when every webhook got a 2xx, every recording was fetched and
    every click-to-call passed its checks, 1 otherwise, and 2 for invalid
    options or a missing auth token.
    """
    auth_token = (
        args.auth_token or os.environ.get(AUTH_TOKEN_ENV) or settings_auth_token
    )
    if not auth_token:
        print(
            f"error: missing Twilio auth token: pass --auth-token, set "
            f"{AUTH_TOKEN_ENV} or configure the server's Twilio auth token",
            file=sys.stderr,
        )
        return 2
    api_token = args.api_token or os.environ.get(API_TOKEN_ENV) or ""
    click_to_calls = args.click_to_calls
    if click_to_calls is None:
        click_to_calls = 1 if api_token else 0
    api_port = args.twilio_api_port
    if api_port is None:
        api_port = loopback_port(settings_twilio_api_url)
    if click_to_calls and api_port is None:
        print(
            "error: click-to-call needs the server's twilio_api_url to point at "
            "the simulator: start the server with "
            "TOUCHLINE_TWILIO_API_URL=http://127.0.0.1:PORT and pass "
            "--twilio-api-port PORT, or pass --click-to-calls 0",
            file=sys.stderr,
        )
        return 2
    if not click_to_calls:
        print(
            f"click-to-call not simulated: pass --api-token or set {API_TOKEN_ENV} "
            "to a rep's API token"
        )

    with _work_directory(args.work_dir) as work_dir:
        account_sid = args.account_sid or settings_account_sid or DEFAULT_ACCOUNT_SID
        options = dataclasses.replace(
            _options_from_args(args, auth_token, account_sid, work_dir),
            click_to_calls=click_to_calls,
            api_token=api_token,
            twilio_api_port=api_port or 0,
        )
        try:
            report = asyncio.run(run_simulation(options, progress=print))
        except (ValueError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    if args.report is not None:
        args.report.write_text(report.to_json() + "\n", encoding="utf-8")
    print(format_summary(report))
    for error in report.errors[:10]:
        print(
            f"  {error.path} {error.event} {error.sid}: status {error.status}, "
            f"{error.body_start[:100]!r}"
        )
    for problem in report.click_to_call_problems[:10]:
        print(f"  click-to-call: {problem}")
    failed = (
        report.errors or report.recordings_not_fetched or report.click_to_call_problems
    )
    return 1 if failed else 0


def loopback_port(url: str | None) -> int | None:
    """Return the port of an http URL on a loopback host, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        return None
    return parts.port


def _options_from_args(
    args: argparse.Namespace, auth_token: str, account_sid: str, work_dir: Path
) -> SimulationOptions:
    unknown = args.unknown_callers
    withheld = args.withheld_callers
    return SimulationOptions(
        url=args.url,
        auth_token=auth_token,
        work_dir=work_dir,
        account_sid=account_sid,
        calls=args.calls,
        sms=args.sms,
        mms=args.mms,
        rate=args.rate,
        seed=args.seed,
        unknown_callers=args.calls // 10 if unknown is None else unknown,
        withheld_callers=args.calls // 20 if withheld is None else withheld,
        media_host=args.media_host,
        media_port=args.media_port,
        fetch_timeout_s=args.fetch_timeout,
        not_ready_requests=args.not_ready_requests,
    )


@contextlib.contextmanager
def _work_directory(path: Path | None) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="touchline-simulate-") as temporary:
        yield Path(temporary)
