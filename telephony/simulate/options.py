"""SimulationOptions, its defaults and its validation."""

from dataclasses import dataclass
from pathlib import Path

from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS

WITHHELD_NUMBER = "+266696687"  # how Twilio presents an anonymous caller
DEFAULT_ACCOUNT_SID = "AC" + "5e1f" * 8  # fixed fake, never a real account

DEFAULT_REPS = tuple((rep.email, rep.phone) for rep in REPS)
DEFAULT_CUSTOMERS = tuple(customer.phone for customer in CUSTOMERS)


@dataclass(frozen=True)
class SimulationOptions:
    url: str  # base URL of the Touchline server, webhooks go to url + path
    auth_token: str
    work_dir: Path  # where recording WAVs are written
    account_sid: str = DEFAULT_ACCOUNT_SID
    calls: int = 20
    sms: int = 10
    mms: int = 0  # inbound MMS, each with a picture served by the media server
    rate: float = 5.0  # maximum webhook requests per second, 0 = no limit
    seed: int = 1
    reps: tuple[tuple[str, str], ...] = DEFAULT_REPS  # (email, phone)
    customers: tuple[str, ...] = DEFAULT_CUSTOMERS  # phones
    company_number: str = ORGANISATION_NUMBER
    unknown_callers: int = 0  # calls from numbers that no customer owns
    withheld_callers: int = 0  # calls from WITHHELD_NUMBER
    media_host: str = "127.0.0.1"  # host name put in RecordingUrl
    media_bind_host: str = "127.0.0.1"  # interface the media server listens on
    media_port: int = 0  # 0 = any free port
    fetch_timeout_s: float = 60.0  # wait this long for the server to fetch media
    not_ready_requests: int = 0  # return 404 to the first N requests per recording
    absent_every: int = 6  # every Nth answered call gets an absent recording, 0 = none
    concurrency: int = 8  # calls and messages in flight, and HTTP connections
    history_hours: float = 4.0  # calls start within this many hours before now
    # Click-to-calls played through the Twilio API stand-in. Each needs
    # `api_token`, a rep's API token, and a service whose `twilio_api_url`
    # is the stand-in on 127.0.0.1:`twilio_api_port`.
    click_to_calls: int = 0
    api_token: str = ""
    twilio_api_port: int = 0  # 0 = any free port


MAX_EVENTS = 100_000


def validate_options(options: SimulationOptions) -> None:
    """Raise ValueError naming the first invalid option."""
    if not options.url.startswith(("http://", "https://")):
        raise ValueError(f"invalid url {options.url!r}: expected http:// or https://")
    if not options.auth_token:
        raise ValueError("missing auth token")
    non_negative = (
        "calls",
        "sms",
        "mms",
        "unknown_callers",
        "withheld_callers",
        "rate",
        "fetch_timeout_s",
        "not_ready_requests",
        "absent_every",
        "click_to_calls",
    )
    for name in non_negative:
        if getattr(options, name) < 0:
            raise ValueError(f"invalid {name} {getattr(options, name)}: must be >= 0")
    # Every call and message is planned and synthesised in memory up front.
    for name in ("calls", "sms", "mms", "click_to_calls"):
        if getattr(options, name) > MAX_EVENTS:
            raise ValueError(
                f"invalid {name} {getattr(options, name)}: must be <= {MAX_EVENTS}"
            )
    if options.unknown_callers + options.withheld_callers > options.calls:
        raise ValueError(
            "unknown_callers + withheld_callers must not exceed calls "
            f"({options.unknown_callers} + {options.withheld_callers} > "
            f"{options.calls})"
        )
    if options.click_to_calls and not options.api_token:
        raise ValueError(
            "missing api_token: click-to-call needs a rep's API token "
            "(touchline tokens create --user EMAIL)"
        )
    if not 0 <= options.twilio_api_port <= 65535:
        raise ValueError(
            f"invalid twilio_api_port {options.twilio_api_port}: must be 0 to 65535"
        )
    if options.history_hours <= 0:
        raise ValueError(f"invalid history_hours {options.history_hours}: must be > 0")
    if options.concurrency < 1:
        raise ValueError(f"invalid concurrency {options.concurrency}: must be >= 1")
    if not options.reps:
        raise ValueError("no reps: pass at least one (email, phone) pair")
    texts = options.sms or options.mms
    if not options.customers and (texts or _customer_call_count(options)):
        raise ValueError("no customers: pass at least one customer phone")


def _customer_call_count(options: SimulationOptions) -> int:
    return options.calls - options.unknown_callers - options.withheld_callers
