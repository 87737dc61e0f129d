"""Compare decoding variants of faster-whisper on the benchmark call.

Loads each variant once, transcribes the warm-up file with it, then
transcribes one recording with every variant in turn, for several rounds,
so that all variants see the same load. The recording is the call of
bench/transcribe_rtf.py (13 turns of one sentence), or with --long-turns
the same sentences in five turns of three, 0.6 s apart, so that each
channel speaks for 14 to 17 s at a time. Prints
one line per transcription: wall seconds, real-time factor, CPU seconds of
the process, word error rate and the one-minute load average.

Variants:
  transcribe  the engine before windowed decoding: one
              WhisperModel.transcribe call over the joined speech of both
              channels, with language detection in an encoder pass of its
              own and one model with 2 threads
  windows     the engine as it is, with the decoders, threads, beam size
              and word timestamps in the variant's name
  rest alone  the windows as they were before: speech that Whisper leaves
              undecoded at a window's end is decoded alone, in an encoder
              pass of its own, instead of with the speech after it

Run from the repository root, with no network access needed:
    HF_HUB_OFFLINE=1 .venv/bin/python bench/transcribe_variants.py
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import wave
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import numpy.typing as npt

# Nothing may be downloaded: models come from installed packages only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper.transcribe import Segment as WhisperSegment

from transcripts.engine import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    FasterWhisperEngine,
    TranscriptResult,
)
from transcripts.speech_pack import SpeechPack
from transcripts.whisper_models import resolve_model
from transcripts.window_decoder import WindowDecoder, _shift

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe_rtf import (
    DIALOGUE,
    TWILIO_SAMPLE_RATE_HZ,
    assemble_turns,
    print_machine,
    synthesize_speech,
    write_wav,
)
from wer import word_errors

# Turns of --long-turns: (channel, indexes of DIALOGUE sentences).
LONG_TURNS = [
    (1, [0, 2, 4]),
    (2, [1, 3, 5]),
    (1, [6, 8, 10]),
    (2, [7, 9, 11]),
    (1, [12, 0, 2]),
]
SENTENCE_GAP_SECONDS = 0.6


class TranscribeCallEngine(FasterWhisperEngine):
    """The joined speech decoded by one WhisperModel.transcribe call."""

    def _decode(self, pack: SpeechPack) -> tuple[Iterable[WhisperSegment], str]:
        segments, info = self._model.transcribe(
            pack.audio,
            language=self.language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            log_prob_threshold=LOG_PROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD,
            word_timestamps=True,
        )
        return list(segments), info.language


class RestAloneDecoder(WindowDecoder):
    """Windows whose undecoded end is decoded alone, without what follows."""

    def _decode_window(
        self,
        audio: npt.NDArray[np.float32],
        window: tuple[int, int],
        language: Future[str],
        detect: bool,
    ) -> list[WhisperSegment]:
        start, end = window
        segments = self._generate(audio[start:end], language, detect)
        return [_shift(segment, start / self._sample_rate) for segment in segments]


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    windows: bool
    decoders: int
    threads: int
    beam_size: int = 5
    word_timestamps: bool = True
    rest_alone: bool = False


VARIANTS = [
    Variant("transcribe 1x2 beam 5", False, 1, 2),
    Variant("windows 1x2 beam 5", True, 1, 2),
    Variant("windows 2x1 beam 5", True, 2, 1),
    Variant("windows 2x1 beam 5 rest alone", True, 2, 1, rest_alone=True),
    Variant("windows 2x1 beam 1", True, 2, 1, beam_size=1),
    Variant("windows 2x1 beam 5 no words", True, 2, 1, word_timestamps=False),
    Variant("windows 3x1 beam 5", True, 3, 1),
]


def main() -> None:
    arguments = parse_arguments()
    print_machine()
    chosen = [v for v in VARIANTS if not arguments.only or v.name in arguments.only]
    with tempfile.TemporaryDirectory() as scratch:
        recording = Path(scratch) / "call.wav"
        turns = LONG_TURNS if arguments.long_turns else one_sentence_turns()
        scripts = write_call(recording, turns)
        audio_seconds = read_seconds(recording)
        warm_up = Path(scratch) / "warm_up.wav"
        write_wav(warm_up, assemble_turns([(1, synthesize_speech(DIALOGUE[0][1]))]))
        model_dir = resolve_model(arguments.model, arguments.data_dir)
        engines = {}
        for variant in chosen:
            engines[variant.name] = load(variant, model_dir, arguments.model)
            engines[variant.name].transcribe(warm_up)
        print(f"model {arguments.model}, {audio_seconds:.1f} s of audio")
        print("| round | variant | wall | real-time factor | CPU | WER | load |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for round_number in range(1, arguments.rounds + 1):
            for name, engine in engines.items():
                started = time.perf_counter()
                cpu_started = time.process_time()
                result = engine.transcribe(recording)
                cpu_seconds = time.process_time() - cpu_started
                wall_seconds = time.perf_counter() - started
                print(
                    f"| {round_number} | {name} | {wall_seconds:.2f} s "
                    f"| {wall_seconds / audio_seconds:.3f} | {cpu_seconds:.2f} s "
                    f"| {word_error_rate(result, scripts):.1%} "
                    f"| {os.getloadavg()[0]:.2f} |",
                    flush=True,
                )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over all variants (default: 3)"
    )
    parser.add_argument(
        "--model", default="base", help="model for every variant (default: base)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[variant.name for variant in VARIANTS],
        help="variants to run (default: all)",
    )
    parser.add_argument(
        "--long-turns",
        action="store_true",
        help="transcribe the call with turns of three sentences",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rtf_data",
        help="folder for the joined base model (default: <temp>/rtf_data)",
    )
    return parser.parse_args()


def one_sentence_turns() -> list[tuple[int, list[int]]]:
    return [(channel, [index]) for index, (channel, _) in enumerate(DIALOGUE)]


def write_call(path: Path, turns: list[tuple[int, list[int]]]) -> dict[int, str]:
    """Write the turns as a two-channel WAV and return each channel's script."""
    gap = np.zeros(round(SENTENCE_GAP_SECONDS * TWILIO_SAMPLE_RATE_HZ), np.int16)
    track = []
    scripts: dict[int, list[str]] = {1: [], 2: []}
    for channel, indexes in turns:
        parts = []
        for index in indexes:
            text = DIALOGUE[index][1]
            parts.extend([synthesize_speech(text), gap])
            scripts[channel].append(text)
        track.append((channel, np.concatenate(parts[:-1])))
    write_wav(path, assemble_turns(track))
    return {channel: " ".join(texts) for channel, texts in scripts.items()}


def read_seconds(path: Path) -> float:
    with wave.open(str(path)) as recording:
        return recording.getnframes() / recording.getframerate()


def word_error_rate(result: TranscriptResult, scripts: dict[int, str]) -> float:
    """Return the word error rate over both channels against their scripts."""
    errors = 0
    total = 0
    for channel, script in scripts.items():
        texts = [s.text for s in result.segments if s.channel == channel]
        channel_errors, channel_words = word_errors(script, " ".join(texts))
        errors += channel_errors
        total += channel_words
    return errors / total


def load(variant: Variant, model_dir: Path, model: str) -> FasterWhisperEngine:
    engine_class = FasterWhisperEngine if variant.windows else TranscribeCallEngine
    engine = engine_class(
        model_dir,
        model,
        language=None,
        cpu_threads=variant.threads,
        beam_size=variant.beam_size,
        decoders=variant.decoders,
    )
    settings = engine._decoder._settings
    if not variant.word_timestamps:
        # A variant only: the engine needs word times to map words to channels.
        settings = dataclasses.replace(settings, word_timestamps=False)
    decoder_class = RestAloneDecoder if variant.rest_alone else WindowDecoder
    engine._decoder = decoder_class(engine._model, settings, variant.decoders)
    return engine


if __name__ == "__main__":
    main()
