"""Synthesise telephone-quality test audio with espeak-ng and sox.

Samples are int16 numpy arrays: shape (n,) for one channel and (n, channels)
for a multi-channel recording. The default rate matches Twilio recordings.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

TWILIO_SAMPLE_RATE_HZ = 8000
Samples = npt.NDArray[np.int16]


def require_tool(name: str) -> str:
    """Return the path of command `name`, or raise naming the package to install."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(
            f"{name} not found on PATH. The audio tests need it "
            f"(Debian/Ubuntu: apt-get install {name})."
        )
    return path


def synthesize_speech(
    text: str,
    sample_rate: int = TWILIO_SAMPLE_RATE_HZ,
    voice: str = "en-us",
    words_per_minute: int = 140,
) -> Samples:
    """Speak `text` with espeak-ng and return it as mono 16-bit samples.

    The output is deterministic: sox runs without dither (-D), because dither
    adds random noise that changes what a small model hears.
    """
    espeak = require_tool("espeak-ng")
    sox = require_tool("sox")
    with tempfile.TemporaryDirectory() as directory:
        raw_path = Path(directory) / "espeak.wav"
        resampled_path = Path(directory) / "resampled.wav"
        _run([espeak, "-v", voice, "-s", str(words_per_minute), "-w", raw_path, text])
        # -G lowers the gain where needed so resampling cannot clip.
        output_format = ["-r", str(sample_rate), "-c", "1", "-b", "16"]
        _run([sox, "-D", "-G", raw_path, *output_format, resampled_path])
        samples, _ = read_wav(resampled_path)
    return samples[:, 0]


def convert_to_mulaw(source: Path, target: Path) -> Path:
    """Re-encode the WAV file `source` as 8-bit mu-law WAV at `target`."""
    sox = require_tool("sox")
    _run([sox, "-D", source, "-e", "mu-law", "-b", "8", target])
    return target


def silence(seconds: float, sample_rate: int = TWILIO_SAMPLE_RATE_HZ) -> Samples:
    """Return `seconds` of digital silence (all zeros)."""
    return np.zeros(round(seconds * sample_rate), dtype=np.int16)


def low_noise(
    seconds: float,
    amplitude: int = 30,
    seed: int = 0,
    sample_rate: int = TWILIO_SAMPLE_RATE_HZ,
) -> Samples:
    """Return Gaussian noise with standard deviation `amplitude` (of 32767).

    The default is about -61 dBFS, similar to the hiss of a quiet phone line.
    """
    generator = np.random.default_rng(seed)
    noise = generator.normal(0.0, amplitude, round(seconds * sample_rate))
    return np.clip(noise, -32768, 32767).astype(np.int16)


def assemble_turns(
    turns: Sequence[tuple[int, Samples]],
    gap_seconds: float = 0.7,
    sample_rate: int = TWILIO_SAMPLE_RATE_HZ,
) -> Samples:
    """Lay out (channel, samples) turns one after another on a two-channel track.

    Channel numbers are 1 or 2. While one channel speaks the other is silent,
    and `gap_seconds` of silence on both channels precedes every turn.
    """
    gap = round(gap_seconds * sample_rate)
    total = sum(gap + len(samples) for _, samples in turns) + gap
    track = np.zeros((total, 2), dtype=np.int16)
    position = gap
    for channel, samples in turns:
        if channel not in (1, 2):
            raise ValueError(f"channel must be 1 or 2, got {channel}")
        track[position : position + len(samples), channel - 1] = samples
        position += len(samples) + gap
    return track


def turn_start_seconds(
    turns: Sequence[tuple[int, Samples]],
    gap_seconds: float = 0.7,
    sample_rate: int = TWILIO_SAMPLE_RATE_HZ,
) -> list[float]:
    """Return when each turn of assemble_turns starts, in seconds."""
    gap = round(gap_seconds * sample_rate)
    starts = []
    position = gap
    for _, samples in turns:
        starts.append(position / sample_rate)
        position += len(samples) + gap
    return starts


def write_wav(
    path: Path, samples: Samples, sample_rate: int = TWILIO_SAMPLE_RATE_HZ
) -> Path:
    """Write `samples`, shaped (n,) or (n, channels), as 16-bit PCM WAV."""
    frames = samples[:, np.newaxis] if samples.ndim == 1 else samples
    with wave.open(str(path), "wb") as output:
        output.setnchannels(frames.shape[1])
        output.setsampwidth(2)
        output.setframerate(sample_rate)
        output.writeframes(frames.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[Samples, int]:
    """Read 16-bit PCM WAV as samples of shape (n, channels) and the rate in Hz."""
    with wave.open(str(path), "rb") as wav_file:
        if wav_file.getsampwidth() != 2:
            raise ValueError(f"{path} is not 16-bit PCM WAV")
        frames = wav_file.readframes(wav_file.getnframes())
        channels = wav_file.getnchannels()
        rate = wav_file.getframerate()
    samples = np.frombuffer(frames, dtype="<i2").astype(np.int16)
    return samples.reshape(-1, channels), rate


def duration_seconds(
    samples: Samples, sample_rate: int = TWILIO_SAMPLE_RATE_HZ
) -> float:
    """Return the length of `samples` in seconds."""
    return len(samples) / sample_rate


def _run(command: Sequence[str | Path]) -> None:
    arguments = [str(part) for part in command]
    completed = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{arguments[0]} failed with exit status {completed.returncode}: "
            f"{completed.stderr.strip()}"
        )
