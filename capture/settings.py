"""Settings: declared once, read from a TOML file, overridden by environment.

The file is `touchline.toml` in the working directory, or the path in
`TOUCHLINE_CONFIG`. Every key can be overridden by `TOUCHLINE_<KEY>` (upper
case). Lists are comma-separated in environment variables.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from capture.currencies import is_currency


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any]
    required: bool = False


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    # TOML floats: int() would cut 1.5 to 1 and raise OverflowError on inf.
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _port(value: Any) -> int:
    port = _integer(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return port


def _relay(value: Any) -> str:
    """Read an SMTP relay as host:port, or empty for none."""
    text = _text(value).strip()
    if not text:
        return ""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    _port(port)
    return text


def _non_negative(value: Any) -> int:
    number = _integer(value)
    if number < 0:
        raise ValueError(f"{number} is negative")
    return number


def _positive(value: Any) -> int:
    number = _integer(value)
    if number <= 0:
        raise ValueError(f"{number} is not a positive integer")
    return number


# Decoders and threads of one transcription job. Each decoder loads its own
# model replica (about 120 MB for base at int8), so the bound keeps a typo
# from reserving gigabytes or thousands of threads at the first job.
MAX_TRANSCRIBE_PARALLEL = 64


def _transcribe_parallel(value: Any) -> int:
    number = _positive(value)
    if number > MAX_TRANSCRIBE_PARALLEL:
        raise ValueError(f"{number} is outside 1..{MAX_TRANSCRIBE_PARALLEL}")
    return number


def _text_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [_text(item) for item in value]
    else:
        raise ValueError("expected a list or a comma-separated string")
    return tuple(item.strip().lower() for item in items if item.strip())


def _media_hosts(value: Any) -> tuple[str, ...]:
    hosts = _text_list(value)
    for host in hosts:
        name, _, port = host.partition(":")
        if not name or "/" in host or (port and not port.isdigit()):
            raise ValueError(f"{host!r} is not host or host:port")
    return hosts


def _public_url(value: Any) -> str:
    url = _text(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not have a query or fragment")
    return url


def _shared_keys(value: Any) -> tuple[tuple[str, str], ...]:
    """Parse `key id=secret` pairs, comma-separated, or a TOML table."""
    if isinstance(value, dict):
        pairs = [(_text(key), _text(secret)) for key, secret in value.items()]
    else:
        pairs = []
        for item in _text(value).split(","):
            if not item.strip():
                continue
            key, separator, secret = item.partition("=")
            if not separator:
                raise ValueError("expected key_id=secret pairs separated by commas")
            pairs.append((key, secret))
    for key, secret in pairs:
        if not key.strip() or not secret.strip():
            raise ValueError("a shared key needs an id and a secret")
    return tuple((key.strip(), secret.strip()) for key, secret in pairs)


def _domains(value: Any) -> tuple[str, ...]:
    domains = _text_list(value)
    for domain in domains:
        if "@" in domain or "/" in domain or " " in domain or "." not in domain:
            raise ValueError(f"{domain!r} is not a mail domain such as crm.example.com")
    return domains


def _currency(value: Any) -> str:
    code = _text(value).strip().upper()
    if not is_currency(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code, such as USD")
    return code


def _timezone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r}") from error
    return name


def _region(value: Any) -> str:
    region = _text(value).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region code {region!r}")
    return region


def _clock_minutes(text: str) -> int:
    hours, separator, minutes = text.strip().partition(":")
    if not separator or not hours.isdigit() or not minutes.isdigit():
        raise ValueError(f"{text.strip()!r} is not a time written HH:MM")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > 24 * 60:
        raise ValueError(f"{text.strip()!r} is outside 00:00..24:00")
    return total


def _hours(value: Any) -> str:
    """Parse a daily span `HH:MM-HH:MM`; the end may be 24:00 (midnight)."""
    start, separator, end = _text(value).partition("-")
    if not separator:
        raise ValueError(f"{value!r} is not a span written HH:MM-HH:MM")
    first, last = _clock_minutes(start), _clock_minutes(end)
    if first >= last:
        raise ValueError(f"{value!r} ends before it starts")
    return f"{first // 60:02d}:{first % 60:02d}-{last // 60:02d}:{last % 60:02d}"


WEEKDAYS = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


def _weekday(value: Any) -> str:
    day = _text(value).strip().lower()
    if day not in WEEKDAYS:
        raise ValueError(f"{value!r} is not a weekday name such as monday")
    return day


def _engine(value: Any) -> str:
    engine = _text(value)
    if engine not in ("faster-whisper", "openai-whisper", "none"):
        raise ValueError(
            f"unknown engine {engine!r}; use faster-whisper, openai-whisper or none"
        )
    return engine


def _writer_mode(value: Any) -> str:
    mode = _text(value)
    if mode not in ("process", "thread"):
        raise ValueError(f"unknown writer {mode!r}; use process or thread")
    return mode


def _phone_or_empty(value: Any) -> str:
    text = _text(value).strip()
    if not text:
        return ""
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"{text!r} is not a number in E.164 (+ and digits)") from error
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{text!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _api_url(value: Any) -> str:
    url = _text(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"{url!r} must be a scheme and host only")
    return url


def _channel(value: Any) -> int:
    channel = _integer(value)
    if channel not in (1, 2):
        raise ValueError(f"channel {channel} is not 1 or 2")
    return channel


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "data", "Folder for the SQLite file and recordings.", _text),
    Setting(
        "database_url",
        "",
        "SQLAlchemy URL; empty means a SQLite file touchline.db in data_dir. "
        "sqlite:/// and postgresql:// URLs get their async drivers.",
        _text,
    ),
    Setting(
        "public_url",
        "http://127.0.0.1:8080",
        "Base URL that Twilio calls; signatures are checked against it.",
        _public_url,
    ),
    Setting("twilio_account_sid", "", "Twilio account SID (AC...).", _text),
    Setting(
        "twilio_auth_token",
        "",
        "Twilio auth token; signs webhooks and authenticates media downloads.",
        _text,
        required=True,
    ),
    Setting(
        "twilio_shared_keys",
        "",
        "SharedKey secrets of webhooks signed with HMAC-SHA256, as key_id=secret "
        "pairs separated by commas (or a TOML table); empty accepts only the "
        "auth token's signatures.",
        _shared_keys,
    ),
    Setting(
        "media_hosts",
        "api.twilio.com",
        "Hosts recordings may be fetched from: host (any port) or host:port. "
        "Fetched over https, loopback hosts over http.",
        _media_hosts,
    ),
    Setting(
        "media_max_bytes",
        200 * 1024 * 1024,
        "Largest recording or MMS media download, in bytes.",
        _positive,
    ),
    Setting(
        "media_timeout", 60, "Timeout of one media download, in seconds.", _positive
    ),
    Setting(
        "default_region",
        "US",
        "Region code for phone numbers written without a country code.",
        _region,
    ),
    Setting("timezone", "UTC", "The organisation's IANA time zone.", _timezone),
    Setting(
        "currency",
        "USD",
        "The organisation's ISO 4217 currency, for amounts given without one.",
        _currency,
    ),
    Setting(
        "smtp_port",
        2525,
        "Port of the SMTP capture listener that `touchline serve` starts; 0 "
        "starts none.",
        _port,
    ),
    Setting(
        "smtp_host",
        "127.0.0.1",
        "Address the SMTP capture listener binds to; 0.0.0.0 for a public MX.",
        _text,
    ),
    Setting(
        "capture_domains",
        "",
        "Mail domains the SMTP listener accepts mail for (comma-separated); "
        "every other recipient is rejected with 550.",
        _domains,
    ),
    Setting(
        "smtp_tls_cert",
        "",
        "PEM certificate chain for STARTTLS on the SMTP listener; empty offers "
        "no STARTTLS.",
        _text,
    ),
    Setting(
        "smtp_tls_key",
        "",
        "PEM private key of smtp_tls_cert; empty when the key is in that file.",
        _text,
    ),
    Setting(
        "email_max_bytes",
        30 * 1024 * 1024,
        "Largest email accepted, in bytes: the SMTP message size and the body "
        "of an inbound-email webhook.",
        _positive,
    ),
    Setting(
        "mailgun_signing_key",
        "",
        "Mailgun webhook signing key; empty rejects Mailgun inbound webhooks.",
        _text,
    ),
    Setting(
        "email_webhook_password",
        "",
        "Password that SendGrid and Postmark send with HTTP basic auth on the "
        "inbound-email URL; empty rejects both.",
        _text,
    ),
    Setting(
        "export_smtp_relay",
        "",
        "SMTP relay (host:port) that sends scheduled exports by email; empty "
        "turns email delivery off.",
        _relay,
    ),
    Setting(
        "export_dir",
        "",
        "Folder that scheduled exports are written under, one subfolder per "
        "schedule; empty means <data_dir>/exports.",
        _text,
    ),
    Setting(
        "export_mail_from",
        "touchline@localhost",
        "Sender address of scheduled export emails.",
        _text,
    ),
    Setting(
        "transcribe_engine",
        "faster-whisper",
        "Speech-to-text engine: faster-whisper, openai-whisper (needs the "
        "openai-whisper extra), or none to skip transcription.",
        _engine,
    ),
    Setting(
        "whisper_model",
        "base",
        "Whisper model: base, tiny.en, a CTranslate2 model folder, or for "
        "openai-whisper also a checkpoint file from `touchline models convert`.",
        _text,
    ),
    Setting(
        "transcribe_decoders",
        2,
        "Windows of one recording that faster-whisper decodes at once, each "
        "on its own model replica (1 to 64); openai-whisper decodes one at a time.",
        _transcribe_parallel,
    ),
    Setting(
        "transcribe_threads",
        1,
        "CPU threads of each faster-whisper decoder; openai-whisper uses "
        "transcribe_decoders times this many (1 to 64).",
        _transcribe_parallel,
    ),
    Setting(
        "dial_rep_channel",
        2,
        "Recording channel of the rep on <Dial> calls (1 or 2).",
        _channel,
    ),
    Setting(
        "api_rep_channel",
        1,
        "Recording channel of the rep on REST-created calls (1 or 2).",
        _channel,
    ),
    Setting(
        "twilio_api_url",
        "https://api.twilio.com",
        "Base URL of Twilio's REST API, used for click-to-call.",
        _api_url,
    ),
    Setting(
        "caller_id",
        "",
        "Company number shown to customers on click-to-call (E.164); empty uses "
        "the first number on the admin numbers page.",
        _phone_or_empty,
    ),
    Setting(
        "recording_disclosure",
        "",
        "Sentence said to both parties before a recorded call is bridged, such "
        "as a notice that the call is recorded; empty says nothing.",
        _text,
    ),
    Setting(
        "ring_seconds",
        20,
        "Seconds each rep's phone rings on an inbound call before the next "
        "one in turn is tried.",
        _positive,
    ),
    Setting(
        "inbound_team",
        "",
        "Team whose reps ring, in turn, for callers with no owner; empty rings "
        "no rep and goes to the fallback number or voicemail.",
        _text,
    ),
    Setting(
        "inbound_fallback_number",
        "",
        "Number (E.164) dialled when no rep answers an inbound call; empty goes "
        "to voicemail.",
        _phone_or_empty,
    ),
    Setting(
        "voicemail_prompt",
        "Please leave a message after the tone.",
        "Sentence said before an inbound caller's voicemail is recorded.",
        _text,
    ),
    Setting(
        "secret_key",
        "",
        "Key that signs and encrypts session cookies; at least 32 characters. "
        "Changing it ends every login session.",
        _text,
        required=True,
    ),
    Setting(
        "session_idle_seconds",
        2 * 60 * 60,
        "Seconds without a request after which a login session ends.",
        _positive,
    ),
    Setting(
        "session_max_seconds",
        12 * 60 * 60,
        "Seconds after login at which a session ends, however active it is.",
        _positive,
    ),
    Setting(
        "login_max_failures",
        5,
        "Failed logins in a row for one email before it is locked for a while.",
        _positive,
    ),
    Setting(
        "login_lockout_seconds",
        60,
        "First lockout after login_max_failures, in seconds; it doubles with "
        "each further failure, up to 64 times this value.",
        _positive,
    ),
    Setting(
        "retention_days",
        0,
        "Days recordings and transcripts are kept; 0 keeps them. Calls and "
        "touches are never deleted.",
        _non_negative,
    ),
    Setting(
        "working_hours",
        "09:00-18:00",
        "The working day as HH:MM-HH:MM in each rep's time zone; a plan due "
        "later today ends with it.",
        _hours,
    ),
    Setting(
        "evening_hours",
        "18:00-22:00",
        "The evening as HH:MM-HH:MM (end up to 24:00); a plan due tonight falls in it.",
        _hours,
    ),
    Setting(
        "week_start",
        "monday",
        "First day of the week (monday..sunday); this week ends before it.",
        _weekday,
    ),
    Setting(
        "worker_concurrency",
        2,
        "Jobs one worker process runs at once; transcriptions still run one at "
        "a time, so a second slot lets downloads go on meanwhile.",
        _positive,
    ),
    Setting(
        "webhook_writer",
        "process",
        "Where webhook events are committed: process (a child process of the "
        "web server, so that storing them does not slow down serving requests) "
        "or thread (a thread of the web server).",
        _writer_mode,
    ),
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    public_url: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_shared_keys: tuple[tuple[str, str], ...]
    media_hosts: tuple[str, ...]
    media_max_bytes: int
    media_timeout: int
    default_region: str
    timezone: str
    currency: str
    smtp_port: int
    smtp_host: str
    capture_domains: tuple[str, ...]
    smtp_tls_cert: str
    smtp_tls_key: str
    email_max_bytes: int
    mailgun_signing_key: str
    email_webhook_password: str
    export_smtp_relay: str
    export_dir: str
    export_mail_from: str
    transcribe_engine: str
    whisper_model: str
    transcribe_decoders: int
    transcribe_threads: int
    dial_rep_channel: int
    api_rep_channel: int
    twilio_api_url: str
    caller_id: str
    recording_disclosure: str
    ring_seconds: int
    inbound_team: str
    inbound_fallback_number: str
    voicemail_prompt: str
    secret_key: str
    session_idle_seconds: int
    session_max_seconds: int
    login_max_failures: int
    login_lockout_seconds: int
    retention_days: int
    working_hours: str
    evening_hours: str
    week_start: str
    worker_concurrency: int
    webhook_writer: str
    source: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    @property
    def exports_dir(self) -> Path:
        """The folder that scheduled exports may write under, and nowhere else."""
        if self.export_dir:
            return Path(self.export_dir).expanduser()
        return self.data_dir / "exports"

    @property
    def media_dir(self) -> Path:
        """Where MMS media files are stored, one folder per message."""
        return self.data_dir / "media"


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read settings from the TOML file, the environment and overrides.

    Later sources win: defaults, then the file, then `TOUCHLINE_<KEY>`
    variables, then `overrides` (used by tests and the CLI).
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source: dict[str, str] = {}
    for key, value in _read_file(path, environ).items():
        raw[key] = value
        source[key] = "file"
    for setting in SETTINGS:
        variable = f"TOUCHLINE_{setting.name.upper()}"
        if variable in environ:
            raw[setting.name] = environ[variable]
            source[setting.name] = variable
    for key, value in (overrides or {}).items():
        raw[key] = value
        source[key] = "override"
    return _build(raw, source)


def _read_file(path: Path | None, environ: Mapping[str, str]) -> dict[str, Any]:
    if path is None:
        configured = environ.get("TOUCHLINE_CONFIG")
        path = Path(configured) if configured else Path("touchline.toml")
        if not configured and not path.exists():
            return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError as error:
        raise SettingsError(f"config file {path} not found") from error
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from error


def _build(raw: dict[str, Any], source: dict[str, str]) -> Settings:
    known = {setting.name for setting in SETTINGS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = raw.get(setting.name, setting.default)
        try:
            values[setting.name] = setting.parse(value)
        except (TypeError, ValueError) as error:
            where = source.get(setting.name, "default")
            raise SettingsError(
                f"setting {setting.name} ({where}) is invalid: {error}"
            ) from error
        if setting.required and not values[setting.name]:
            raise SettingsError(
                f"setting {setting.name} is required: set it in touchline.toml "
                f"or TOUCHLINE_{setting.name.upper()}"
            )
    if len(values["secret_key"]) < 32:
        raise SettingsError("setting secret_key is invalid: shorter than 32 characters")
    data_dir = Path(values["data_dir"]).expanduser()
    values["data_dir"] = data_dir
    if not values["database_url"]:
        values["database_url"] = f"sqlite:///{data_dir / 'touchline.db'}"
    return Settings(**values, source=source)
