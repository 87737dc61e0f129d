"""Settings: defaults, the TOML file, environment overrides and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from capture.settings import SETTINGS, SettingsError, load_settings

REQUIRED = {
    "TOUCHLINE_TWILIO_AUTH_TOKEN": "token",
    "TOUCHLINE_SECRET_KEY": "k" * 32,
}


def test_settings_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ={**REQUIRED, "TOUCHLINE_DATA_DIR": str(tmp_path)})

    assert settings.media_hosts == ("api.twilio.com",)
    assert settings.database_url == f"sqlite:///{tmp_path / 'touchline.db'}"
    assert settings.transcribe_engine == "faster-whisper"
    assert settings.whisper_model == "base"


def test_settings_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "touchline.toml"
    config.write_text(
        'media_hosts = ["a.example"]\nsmtp_port = 2526\ntimezone = "Asia/Shanghai"\n'
    )
    environ = {**REQUIRED, "TOUCHLINE_MEDIA_HOSTS": "b.example, 127.0.0.1:9000"}

    settings = load_settings(config, environ=environ)

    assert settings.media_hosts == ("b.example", "127.0.0.1:9000")
    assert settings.smtp_port == 2526
    assert settings.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("TOUCHLINE_PUBLIC_URL", "ftp://x", "public_url"),
        ("TOUCHLINE_PUBLIC_URL", "https://x.example/?a=1", "public_url"),
        ("TOUCHLINE_TIMEZONE", "Mars/Olympus", "timezone"),
        ("TOUCHLINE_DEFAULT_REGION", "XX", "default_region"),
        ("TOUCHLINE_SMTP_PORT", "70000", "smtp_port"),
        ("TOUCHLINE_CURRENCY", "ZZZ", "currency"),
        ("TOUCHLINE_CURRENCY", "US", "currency"),
        ("TOUCHLINE_SMTP_PORT", "many", "smtp_port"),
        ("TOUCHLINE_MEDIA_HOSTS", "host:port", "media_hosts"),
        ("TOUCHLINE_TRANSCRIBE_ENGINE", "magic", "transcribe_engine"),
        ("TOUCHLINE_DIAL_REP_CHANNEL", "3", "dial_rep_channel"),
        ("TOUCHLINE_SECRET_KEY", "short", "secret_key"),
        ("TOUCHLINE_TWILIO_AUTH_TOKEN", "", "twilio_auth_token"),
    ],
)
def test_settings_invalid_names_key(variable: str, value: str, key: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(key)):
        load_settings(environ={**REQUIRED, variable: value})


@pytest.mark.parametrize("value", ["1.5", "0.5", "inf", "-inf", "nan"])
@pytest.mark.parametrize("key", ["transcribe_decoders", "transcribe_threads"])
def test_settings_integer_from_toml_float(tmp_path: Path, key: str, value: str) -> None:
    config = tmp_path / "touchline.toml"
    config.write_text(f"{key} = {value}\n")

    with pytest.raises(SettingsError, match=f"setting {key} \\(file\\) is invalid"):
        load_settings(config, environ=REQUIRED)


def test_settings_integer_from_whole_toml_float(tmp_path: Path) -> None:
    config = tmp_path / "touchline.toml"
    config.write_text("transcribe_decoders = 4.0\n")

    settings = load_settings(config, environ=REQUIRED)

    assert settings.transcribe_decoders == 4


@pytest.mark.parametrize("value", ["65", "99999999999"])
@pytest.mark.parametrize("key", ["TRANSCRIBE_DECODERS", "TRANSCRIBE_THREADS"])
def test_settings_transcribe_parallel_bounded(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(key.lower()) + r".*1\.\.64"):
        load_settings(environ={**REQUIRED, f"TOUCHLINE_{key}": value})


def test_settings_transcribe_parallel_at_bound() -> None:
    settings = load_settings(
        environ={**REQUIRED, "TOUCHLINE_TRANSCRIBE_DECODERS": "64"}
    )

    assert settings.transcribe_decoders == 64


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper", "none"])
def test_settings_transcribe_engine_choices(engine: str) -> None:
    settings = load_settings(
        environ={**REQUIRED, "TOUCHLINE_TRANSCRIBE_ENGINE": engine}
    )
    assert settings.transcribe_engine == engine


def test_settings_unknown_key_in_file(tmp_path: Path) -> None:
    config = tmp_path / "touchline.toml"
    config.write_text('media_host = "typo.example"\n')

    with pytest.raises(SettingsError, match="unknown setting 'media_host'"):
        load_settings(config, environ=REQUIRED)


def test_settings_broken_file(tmp_path: Path) -> None:
    config = tmp_path / "touchline.toml"
    config.write_text("this is = = not toml")

    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, environ=REQUIRED)


def test_settings_missing_config_path(tmp_path: Path) -> None:
    environ = {**REQUIRED, "TOUCHLINE_CONFIG": str(tmp_path / "absent.toml")}

    with pytest.raises(SettingsError, match="not found"):
        load_settings(environ=environ)


def test_settings_each_documented() -> None:
    readme = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()

    for setting in SETTINGS:
        assert f"`{setting.name}`" in readme, setting.name
        assert setting.help.strip(), setting.name
