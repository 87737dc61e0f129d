"""Measure real-time factor and word error rate of each engine and model.

Synthesises about 70 s of dual-channel 8 kHz call audio with espeak-ng and
sox, then times Engine.transcribe for each engine and model on that one
recording. The real-time factor is wall seconds divided by audio seconds,
so below 1 is faster than real time. Model loading (and for openai-whisper
the conversion of the checkpoint) is timed separately and excluded from it.
The word error rate compares each channel's transcript with its script
after normalising numbers (bench/wer.py).

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

from transcripts.engine import (
    DEFAULT_BEAM_SIZE,
    DEFAULT_CPU_THREADS,
    DEFAULT_DECODERS,
    ENGINES,
    FASTER_WHISPER,
    Engine,
    FasterWhisperEngine,
    TranscriptResult,
)
from transcripts.whisper_models import DEFAULT_MODEL, resolve_model

# The espeak-ng and WAV helpers live with the tests so both share one copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio import (
    TWILIO_SAMPLE_RATE_HZ,
    assemble_turns,
    synthesize_speech,
    write_wav,
)
from wer import word_errors

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
        warm_up = Path(scratch) / "warm_up.wav"
        write_wav(warm_up, assemble_turns([(1, synthesize_speech(DIALOGUE[0][1]))]))
        print(f"audio: {recording.name}, {audio_seconds:.1f} s, 2 channels, 8 kHz")
        data_dir = arguments.data_dir or Path(scratch) / "data"
        print(
            f"decoding: beam_size {arguments.beam_size}, VAD on; faster-whisper "
            f"int8, {arguments.decoders} decoders of {arguments.cpu_threads} "
            f"threads; openai-whisper float32, "
            f"{arguments.decoders * arguments.cpu_threads} threads"
        )
        print("| engine | model | wall | real-time factor | CPU | WER | load |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        walls: dict[tuple[str, str], float] = {}
        for model in arguments.models:
            for engine_name in arguments.engines:
                walls[engine_name, model] = measure(
                    engine_name,
                    model,
                    (warm_up, recording),
                    audio_seconds,
                    data_dir,
                    arguments,
                )
        print_ratios(walls)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=ENGINES,
        default=list(ENGINES),
        help="engines to time (default: all)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[DEFAULT_MODEL, "tiny.en"],
        help="models to time, as accepted by resolve_model (default: base tiny.en)",
    )
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=DEFAULT_CPU_THREADS,
        help="threads per faster-whisper decoder, where 0 lets CTranslate2 "
        f"choose (default: {DEFAULT_CPU_THREADS}); openai-whisper gets "
        "decoders times this many, or PyTorch's default for 0",
    )
    parser.add_argument(
        "--decoders",
        type=int,
        default=DEFAULT_DECODERS,
        help="windows that faster-whisper decodes at once "
        f"(default: {DEFAULT_DECODERS})",
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
        help="folder for the joined base model and converted checkpoints "
        "(default: a temporary folder, so both are made again on every run)",
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
    engine_name: str,
    model: str,
    recordings: tuple[Path, Path],
    audio_seconds: float,
    data_dir: Path,
    arguments: argparse.Namespace,
) -> float:
    """Print one table row and return the wall seconds of the transcription.

    `recordings` is a short warm-up file, transcribed untimed so one-off
    costs such as numba compiling openai-whisper's word alignment are left
    out, and the recording to time.
    """
    warm_up, recording = recordings
    started = time.perf_counter()
    engine = load(engine_name, model, data_dir, arguments)
    load_seconds = time.perf_counter() - started
    engine.transcribe(warm_up)

    started = time.perf_counter()
    cpu_started = time.process_time()
    result = engine.transcribe(recording)
    cpu_seconds = time.process_time() - cpu_started
    wall_seconds = time.perf_counter() - started

    print(
        f"| {engine_name} | {model} | {wall_seconds:.2f} s "
        f"| {wall_seconds / audio_seconds:.3f} | {cpu_seconds:.2f} s "
        f"| {word_error_rate(result):.1%} | {load_seconds:.2f} s |",
        flush=True,
    )
    return wall_seconds


def load(
    engine_name: str, model: str, data_dir: Path, arguments: argparse.Namespace
) -> Engine:
    if engine_name == FASTER_WHISPER:
        return FasterWhisperEngine(
            resolve_model(model, data_dir),
            model,
            language=None,
            cpu_threads=arguments.cpu_threads,
            beam_size=arguments.beam_size,
            decoders=arguments.decoders,
        )
    from transcripts.openai_checkpoint import resolve_checkpoint
    from transcripts.openai_engine import OpenAIWhisperEngine

    return OpenAIWhisperEngine(
        resolve_checkpoint(model, data_dir),
        model,
        language=None,
        cpu_threads=arguments.cpu_threads * arguments.decoders,
        beam_size=arguments.beam_size,
    )


def word_error_rate(result: TranscriptResult) -> float:
    """Return the word error rate over both channels against the script."""
    errors = 0
    total = 0
    for channel in (1, 2):
        transcript = " ".join(s.text for s in result.segments if s.channel == channel)
        script = " ".join(text for number, text in DIALOGUE if number == channel)
        channel_errors, channel_words = word_errors(script, transcript)
        errors += channel_errors
        total += channel_words
    return errors / total


def print_ratios(walls: dict[tuple[str, str], float]) -> None:
    """Print how many times faster faster-whisper is than each other engine."""
    for (engine_name, model), wall in walls.items():
        baseline = walls.get((FASTER_WHISPER, model))
        if engine_name == FASTER_WHISPER or baseline is None:
            continue
        ratio = wall / baseline
        print(f"{model}: faster-whisper is {ratio:.1f}x as fast as {engine_name}")


if __name__ == "__main__":
    main()
