"""`touchline backup` and `touchline restore`, and the archive checks behind them."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import threading
from pathlib import Path

import pytest
from test_cli import environment, touchline

from capture import backup, migrate
from capture.errors import InvalidInput

AUDIO = bytes(range(256)) * 64


def users(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT email FROM users ORDER BY email").fetchall()
    return [row[0] for row in rows]


def test_backup_then_restore_with_the_cli(tmp_path: Path, database_url: str) -> None:
    env = environment(tmp_path, database_url)
    assert touchline(env, "demo").returncode == 0
    recording = tmp_path / "data" / "recordings" / "2026" / "RE1.wav"
    recording.parent.mkdir(parents=True)
    recording.write_bytes(AUDIO)
    archive = tmp_path / "out" / "nightly.tar"

    backed_up = touchline(env, "backup", "--output", str(archive))
    recording.unlink()
    added = touchline(
        env,
        "users",
        "add",
        "--email",
        "late@example.com",
        "--name",
        "Late Joiner",
        "--role",
        "rep",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    refused = touchline(env, "restore", str(archive))
    restored = touchline(env, "restore", str(archive), "--replace")

    assert backed_up.returncode == 0, backed_up.stderr
    assert added.returncode == 0, added.stderr
    assert refused.returncode == 1
    assert "--replace" in refused.stderr
    assert restored.returncode == 0, restored.stderr
    assert recording.read_bytes() == AUDIO
    assert "earlier data moved to" in restored.stderr
    if database_url.startswith("sqlite"):
        assert "1 files" in backed_up.stderr
        database = Path(database_url.removeprefix("sqlite:///"))
        assert "late@example.com" not in users(database)
        assert "ana@demo.touchline.test" in users(database)
        assert "and the database" in restored.stderr
    else:
        assert "pg_dump" in backed_up.stderr
        assert "and the database" not in restored.stderr


def test_online_copy_while_another_connection_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = data / "touchline.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE ticks (n INTEGER PRIMARY KEY, pad TEXT)")
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        connection = sqlite3.connect(database, timeout=30)
        number = 0
        while not stop.is_set() and number < 200_000:
            number += 1
            with connection:
                connection.execute(
                    "INSERT INTO ticks VALUES (?, ?)", (number, "x" * 500)
                )
            written.append(number)
        connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 2000:
            stop.wait(0.01)
        result = backup.create_backup(data, f"sqlite:///{database}", tmp_path / "b.tar")
        during = len(written)
    finally:
        stop.set()
        writer.join()
    target = tmp_path / "restored"
    restored = backup.restore_backup(
        result.path, target, f"sqlite:///{target / 'touchline.db'}"
    )

    with sqlite3.connect(target / "touchline.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, top = copy.execute("SELECT count(*), max(n) FROM ticks").fetchone()
    # A snapshot: every row up to some moment, none missing in between.
    assert 2000 <= count <= during + 1
    assert count == top
    assert restored.database_restored
    assert restored.files == 0


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    (data / "recordings" / "RE2.wav").write_bytes(AUDIO)
    database = data / "touchline.db"
    migrate.upgrade(f"sqlite:///{database}")
    result = backup.create_backup(data, f"sqlite:///{database}", tmp_path / "b.tar")
    return data, result.path


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            info.name: tar.extractfile(info).read()  # type: ignore[union-attr]
            for info in tar.getmembers()
        }


def write_tar(path: Path, contents: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def rejected(archive: Path, tmp_path: Path) -> str:
    target = tmp_path / "fresh"
    with pytest.raises(InvalidInput) as error:
        backup.restore_backup(archive, target, f"sqlite:///{target / 'touchline.db'}")
    assert error.value.field == "archive"
    assert not (target / "touchline.db").exists()
    assert not (target / "recordings").exists()
    return error.value.message


def test_archive_lists_files_with_checksums(
    sample: tuple[Path, Path],
) -> None:
    _, archive = sample
    contents = members(archive)
    manifest = json.loads(contents["manifest.json"])

    assert set(contents) == {
        "manifest.json",
        "database/touchline.db",
        "files/recordings/RE2.wav",
    }
    assert contents["files/recordings/RE2.wav"] == AUDIO
    assert manifest["database"] == "sqlite"
    assert {entry["name"] for entry in manifest["members"]} == set(contents) - {
        "manifest.json"
    }


def test_restore_rejects_altered_member(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    _, archive = sample
    contents = members(archive)
    contents["files/recordings/RE2.wav"] = AUDIO[:-1] + b"!"
    altered = tmp_path / "altered.tar"
    write_tar(altered, contents)

    assert "checksum" in rejected(altered, tmp_path)


def test_restore_rejects_missing_member(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    _, archive = sample
    contents = members(archive)
    del contents["files/recordings/RE2.wav"]
    short = tmp_path / "short.tar"
    write_tar(short, contents)

    assert "missing" in rejected(short, tmp_path)


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/escape", "files/../../x"])
def test_restore_rejects_escaping_member(tmp_path: Path, name: str) -> None:
    manifest = {
        "format": backup.FORMAT,
        "version": backup.VERSION,
        "database": "not included",
        "members": [{"name": name, "size": 1, "sha256": "0" * 64}],
    }
    crafted = tmp_path / "crafted.tar"
    write_tar(crafted, {"manifest.json": json.dumps(manifest).encode(), name: b"x"})

    assert "leaves the data folder" in rejected(crafted, tmp_path)
    assert not (tmp_path / "escape.txt").exists()


def test_restore_rejects_other_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar file at all" * 100)
    other = tmp_path / "other.tar"
    write_tar(other, {"manifest.json": b'{"format": "something else"}'})

    assert "not a readable backup" in rejected(junk, tmp_path)
    assert "not a Touchline backup" in rejected(other, tmp_path)


def test_backup_never_overwrites(sample: tuple[Path, Path]) -> None:
    data, archive = sample
    before = archive.read_bytes()

    with pytest.raises(InvalidInput) as error:
        backup.create_backup(data, f"sqlite:///{data / 'touchline.db'}", archive)

    assert error.value.field == "output"
    assert archive.read_bytes() == before
