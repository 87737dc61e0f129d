"""Compare decoding variants of faster-whisper on the benchmark call.

Loads each variant once, transcribes the warm-up file with it, then
transcribes the recording of bench/transcribe_rtf.py with every variant in
turn, for several rounds, so that all variants see the same load. Prints
one line per transcription: wall seconds, real-time factor, CPU seconds of
the process, word error rate and the one-minute load average.

Variants:
  transcribe  the engine before windowed decoding: one
              WhisperModel.transcribe call over the joined speech of both
              channels, with language detection in an encoder pass of its
              own and one model with 2 threads
  windows     the engine as it is, with the decoders, threads, beam size
              and word timestamps in the variant's name

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
from collections.abc import Iterable
from pathlib import Path

# Nothing may be downloaded: models come from installed packages only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from faster_whisper.transcribe import Segment as WhisperSegment

from transcripts.engine import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    FasterWhisperEngine,
)
from transcripts.speech_pack import SpeechPack
from transcripts.whisper_models import resolve_model
from transcripts.window_decoder import WindowDecoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe_rtf import (
    DIALOGUE,
    assemble_turns,
    print_machine,
    synthesize_call,
    synthesize_speech,
    word_error_rate,
    write_wav,
)


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


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    windows: bool
    decoders: int
    threads: int
    beam_size: int = 5
    word_timestamps: bool = True


VARIANTS = [
    Variant("transcribe 1x2 beam 5", False, 1, 2),
    Variant("windows 1x2 beam 5", True, 1, 2),
    Variant("windows 2x1 beam 5", True, 2, 1),
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
        audio_seconds = synthesize_call(recording)
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
                    f"| {word_error_rate(result):.1%} | {os.getloadavg()[0]:.2f} |",
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
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rtf_data",
        help="folder for the joined base model (default: <temp>/rtf_data)",
    )
    return parser.parse_args()


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
    if not variant.word_timestamps:
        # A variant only: the engine needs word times to map words to channels.
        decoder = engine._decoder
        settings = dataclasses.replace(decoder._settings, word_timestamps=False)
        engine._decoder = WindowDecoder(engine._model, settings, variant.decoders)
    return engine


if __name__ == "__main__":
    main()
