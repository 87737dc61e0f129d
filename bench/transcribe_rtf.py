"""Measure the real-time factor of Whisper transcription on a synthetic call.

Synthesises about 70 s of dual-channel 8 kHz call audio with espeak-ng and
sox, then times FasterWhisperEngine.transcribe for each model. The real-time
factor is wall seconds divided by audio seconds, so below 1 is faster than
real time. Model loading is timed separately and excluded from it.

Run from the repository root, with no network access needed:
    HF_HUB_OFFLINE=1 .venv/bin/python bench/transcribe_rtf.py
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

# Nothing may be downloaded: models come from installed packages only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ctranslate2
import faster_whisper

from transcripts.engine import DEFAULT_BEAM_SIZE, FasterWhisperEngine, TranscriptResult
from transcripts.whisper_models import DEFAULT_MODEL, resolve_model

# The espeak-ng and WAV helpers live with the tests so both share one copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from audio import (
    TWILIO_SAMPLE_RATE_HZ,
    assemble_turns,
    synthesize_speech,
    write_wav,
)

# A sales call: (channel, sentence). Channel 1 is the seller, 2 the buyer.
DIALOGUE = [
    (1, "Hello, this is Maria from Northwind. Thanks for taking my call."),
    (2, "Hi Maria. I only have a few minutes before my next meeting."),
    (1, "I wanted to follow up on the proposal we sent last week."),
    (2, "We read it, but the pricing is higher than we expected."),
    (1, "I understand. We can offer a discount on an annual contract."),
    (2, "How large is the discount if we sign for two years?"),
    (1, "For two years we can take fifteen percent off the list price."),
    (2, "That helps. I need to check with our finance team first."),
    (1, "Of course. Should I send a revised quote by email today?"),
    (2, "Please do, and copy my colleague from procurement."),
    (1, "Will do. Can we schedule a follow up call on Thursday?"),
    (2, "Thursday afternoon works. Let us say three o'clock."),
    (1, "Great, I will send the invitation. Thanks for your time."),
]


def main() -> None:
    arguments = parse_arguments()
    print_machine()
    with tempfile.TemporaryDirectory() as scratch:
        recording = Path(scratch) / "call.wav"
        audio_seconds = synthesize_call(recording)
        print(f"audio: {recording.name}, {audio_seconds:.1f} s, 2 channels, 8 kHz")
        data_dir = arguments.data_dir or Path(scratch) / "data"
        print(f"decoding: compute_type int8, beam_size {arguments.beam_size}, VAD on")
        for model in arguments.models:
            measure(model, recording, audio_seconds, data_dir, arguments)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=[DEFAULT_MODEL, "tiny.en"],
        help="models to time, as accepted by resolve_model (default: base tiny.en)",
    )
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="CTranslate2 threads per model, where 0 lets CTranslate2 choose "
        "(default: 0)",
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        default=DEFAULT_BEAM_SIZE,
        help=f"beam search width (default: {DEFAULT_BEAM_SIZE})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder for the joined base model (default: a temporary folder, "
        "so base is joined again on every run)",
    )
    return parser.parse_args()


def print_machine() -> None:
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"cpu: {cpu_model_name()}")
    print(f"cores: {os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable")
    print(
        f"python {platform.python_version()}, faster-whisper "
        f"{faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}"
    )


def cpu_model_name() -> str:
    """Return the CPU model from /proc/cpuinfo, else platform.processor()."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or "unknown"


def synthesize_call(path: Path) -> float:
    """Write the dialogue as a two-channel WAV and return its length in seconds."""
    turns = [(channel, synthesize_speech(text)) for channel, text in DIALOGUE]
    track = assemble_turns(turns)
    write_wav(path, track)
    return len(track) / TWILIO_SAMPLE_RATE_HZ


def measure(
    model: str,
    recording: Path,
    audio_seconds: float,
    data_dir: Path,
    arguments: argparse.Namespace,
) -> None:
    started = time.perf_counter()
    model_dir = resolve_model(model, data_dir)
    resolve_seconds = time.perf_counter() - started

    started = time.perf_counter()
    engine = FasterWhisperEngine(
        model_dir,
        model,
        language=None,
        cpu_threads=arguments.cpu_threads,
        beam_size=arguments.beam_size,
    )
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    result = engine.transcribe(recording)
    wall_seconds = time.perf_counter() - started

    print(
        f"model {model}: audio {audio_seconds:.1f} s, wall {wall_seconds:.2f} s, "
        f"real-time factor {wall_seconds / audio_seconds:.3f}, "
        f"{len(result.segments)} segments, word recall {word_recall(result):.0%} "
        f"(resolve {resolve_seconds:.2f} s, load {load_seconds:.2f} s)"
    )


def word_recall(result: TranscriptResult) -> float:
    """Return the share of each channel's distinct spoken words in its transcript."""
    segments = result.segments
    found = 0
    total = 0
    for channel in (1, 2):
        transcribed = words_of(
            " ".join(s.text for s in segments if s.channel == channel)
        )
        spoken: set[str] = set()
        for turn_channel, text in DIALOGUE:
            if turn_channel == channel:
                spoken |= words_of(text)
        found += len(spoken & transcribed)
        total += len(spoken)
    return found / total


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


if __name__ == "__main__":
    main()
