"""Backups of a Touchline data folder, and restoring one.

A backup is one tar file. It contains `manifest.json`, a consistent copy of
the SQLite database taken with SQLite's online backup (the service may keep
running and writing), and every stored file under the data folder
(recordings, media). The manifest lists each member with its size and
SHA-256, so a damaged or altered archive is refused before anything is
written.

On PostgreSQL the database is not in the archive: `pg_dump` copies it (see
docs/operations.md), and the archive holds the stored files only.

Restoring unpacks into a new folder beside the data folder, checks every
member against the manifest and the database's integrity, and only then
moves the old files aside and the restored ones into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy.engine import make_url

from capture.errors import InvalidInput

FORMAT = "touchline-backup"
VERSION = 1
DATABASE_MEMBER = "database/touchline.db"
# Stored files go under this folder in the archive, by their path in data_dir.
FILES = "files"
MANIFEST_MEMBER = "manifest.json"
# SQLite's own files beside the database; the online copy replaces them.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
# Pages copied per step of the online backup; writers may run between steps.
BACKUP_PAGES_PER_STEP = 1024
CHUNK = 1 << 20
BUSY_SECONDS = 30
# Earlier backups kept in the data folder are not copied into new ones.
BACKUP_GLOB = "touchline-backup-*.tar"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    database: str  # "sqlite" or "not included"
    files: int
    bytes: int


@dataclass(frozen=True)
class RestoreResult:
    files: int
    database_restored: bool
    previous: Path | None


def sqlite_path(database_url: str) -> Path | None:
    """Return the database file of a SQLite URL, or None for another database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise InvalidInput("database_url names no SQLite file", field="database_url")
    return Path(url.database)


def default_name(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"touchline-backup-{moment}.tar"


def create_backup(data_dir: Path, database_url: str, output: Path) -> BackupResult:
    """Write a backup of the database and stored files to `output`."""
    if output.exists():
        raise InvalidInput(f"{output} exists already; choose another name", "output")
    database = sqlite_path(database_url)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".backup-") as work:
        members: list[tuple[str, Path]] = []
        if database is not None:
            if not database.exists():
                raise InvalidInput(f"no database at {database}", "database_url")
            copy = Path(work) / DATABASE_MEMBER
            copy.parent.mkdir()
            _online_copy(database, copy)
            members.append((DATABASE_MEMBER, copy))
        excluded = _database_files(database)
        members += [
            (f"{FILES}/{path.relative_to(data_dir).as_posix()}", path)
            for path in _stored_files(data_dir, excluded, skip=output)
        ]
        manifest = _manifest(members, "sqlite" if database else "not included")
        partial = Path(work) / "archive.tar"
        _write_archive(partial, manifest, members)
        partial.replace(output)
    return BackupResult(
        path=output,
        database=manifest["database"],
        files=len(members) - (1 if database else 0),
        bytes=output.stat().st_size,
    )


def restore_backup(
    archive: Path, data_dir: Path, database_url: str, *, replace: bool = False
) -> RestoreResult:
    """Restore `archive` into `data_dir`; the service must be stopped."""
    database = sqlite_path(database_url)
    if not archive.is_file():
        raise InvalidInput(f"no backup file at {archive}", "archive")
    if not replace and _has_data(data_dir, database):
        raise InvalidInput(
            f"{data_dir} contains data already; pass --replace to move it aside",
            "replace",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=data_dir.parent, prefix=".restore-"))
    try:
        manifest = _unpack_checked(archive, staging)
        has_database = manifest["database"] == "sqlite"
        if has_database and database is None:
            raise InvalidInput(
                "the backup contains a SQLite database but database_url is not SQLite",
                "database_url",
            )
        if has_database:
            _check_integrity(staging / DATABASE_MEMBER)
        previous = _move_in(staging, data_dir, database, has_database)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sum(1 for entry in manifest["members"] if entry["name"] != DATABASE_MEMBER)
    return RestoreResult(files=files, database_restored=has_database, previous=previous)


def _online_copy(source: Path, target: Path) -> None:
    # SQLite's backup API copies a consistent snapshot while others write.
    origin = sqlite3.connect(source, timeout=BUSY_SECONDS)
    copy = sqlite3.connect(target)
    try:
        origin.backup(copy, pages=BACKUP_PAGES_PER_STEP)
        copy.execute("PRAGMA journal_mode=DELETE")
    finally:
        copy.close()
        origin.close()
    _check_integrity(target)


def _check_integrity(database: Path) -> None:
    connection = sqlite3.connect(database)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as error:
        result = str(error)
    finally:
        connection.close()
    if result != "ok":
        raise InvalidInput(f"the database copy is damaged: {result}", "archive")


def _database_files(database: Path | None) -> set[Path]:
    if database is None:
        return set()
    return {database.with_name(database.name + suffix) for suffix in SQLITE_SUFFIXES}


def _stored_files(data_dir: Path, excluded: set[Path], skip: Path) -> Iterator[Path]:
    if not data_dir.is_dir():
        return
    skipped = {path.resolve() for path in excluded | {skip}}
    for path in sorted(data_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.resolve() in skipped or path.match(BACKUP_GLOB):
            continue
        if any(part.startswith(".backup-") for part in path.parts):
            continue
        yield path


def _manifest(members: list[tuple[str, Path]], database: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": database,
        "members": [
            {"name": name, "size": path.stat().st_size, "sha256": _sha256(path)}
            for name, path in members
        ],
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_archive(
    target: Path, manifest: dict[str, Any], members: list[tuple[str, Path]]
) -> None:
    text = json.dumps(manifest, indent=2).encode()
    with tarfile.open(target, "w") as archive:
        info = tarfile.TarInfo(MANIFEST_MEMBER)
        info.size = len(text)
        info.mtime = int(datetime.now(UTC).timestamp())
        archive.addfile(info, _bytes_reader(text))
        for name, path in members:
            archive.add(path, arcname=name, recursive=False)


def _bytes_reader(data: bytes) -> IO[bytes]:
    return io.BytesIO(data)


def _unpack_checked(archive: Path, staging: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:") as tar:
            manifest = _read_manifest(tar)
            expected = {entry["name"]: entry for entry in manifest["members"]}
            seen: set[str] = set()
            for info in tar.getmembers():
                if info.name == MANIFEST_MEMBER:
                    continue
                entry = expected.get(info.name)
                if entry is None or not info.isfile():
                    raise InvalidInput(f"unexpected member {info.name!r}", "archive")
                _extract_one(tar, info, staging / _safe_name(info.name), entry)
                seen.add(info.name)
    except (tarfile.TarError, EOFError) as error:
        message = f"{archive} is not a readable backup: {error}"
        raise InvalidInput(message, "archive") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise InvalidInput(f"member {missing[0]!r} is missing", "archive")
    return manifest


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        source = tar.extractfile(MANIFEST_MEMBER)
    except KeyError:
        source = None
    if source is None:
        raise InvalidInput("the archive has no manifest.json", "archive")
    try:
        manifest = json.loads(source.read())
    except ValueError as error:
        raise InvalidInput(f"manifest.json is not JSON: {error}", "archive") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput("the archive is not a Touchline backup", "archive")
    if manifest.get("version") != VERSION:
        raise InvalidInput(
            f"backup version {manifest.get('version')!r} is not {VERSION}", "archive"
        )
    for entry in manifest.get("members", []):
        _safe_name(entry["name"])
    return manifest


def _safe_name(name: str) -> Path:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        raise InvalidInput(f"member name {name!r} leaves the data folder", "archive")
    return Path(*path.parts)


def _extract_one(
    tar: tarfile.TarFile, info: tarfile.TarInfo, target: Path, entry: dict[str, Any]
) -> None:
    source = tar.extractfile(info)
    if source is None:
        raise InvalidInput(f"member {info.name!r} is not a file", "archive")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("wb") as output:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            output.write(chunk)
    if digest.hexdigest() != entry["sha256"] or info.size != entry["size"]:
        raise InvalidInput(
            f"member {info.name!r} does not match its checksum", "archive"
        )


def _has_data(data_dir: Path, database: Path | None) -> bool:
    if database is not None and database.exists():
        return True
    return data_dir.is_dir() and any(data_dir.iterdir())


def _move_in(
    staging: Path, data_dir: Path, database: Path | None, has_database: bool
) -> Path | None:
    previous = (
        _move_aside(data_dir, database) if _has_data(data_dir, database) else None
    )
    files = staging / FILES
    if files.is_dir():
        for path in sorted(files.rglob("*")):
            if path.is_file():
                target = data_dir / path.relative_to(files)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
    if has_database and database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging / DATABASE_MEMBER, database)
    return previous


def _move_aside(data_dir: Path, database: Path | None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    previous = data_dir.parent / f"{data_dir.name}.before-restore-{stamp}"
    try:
        data_dir.rename(previous)
    except OSError as error:
        raise InvalidInput(
            f"cannot move {data_dir} aside to {previous}: {error.strerror}", "data_dir"
        ) from None
    data_dir.mkdir()
    # A database outside the data folder is moved aside with it.
    for path in _database_files(database):
        if path.exists():
            shutil.move(path, previous / path.name)
    return previous
