"""Print how much espeak-ng speech Silero VAD keeps at telephone quality.

Compares faster-whisper's default VAD options, the options the engine uses
(transcripts.engine.VAD_OPTIONS), and both thresholds without padding, which
shows how close each voice comes to losing speech. Output is a Markdown
table for docs/benchmarks.md.

Run: HF_HUB_OFFLINE=1 .venv/bin/python bench/vad_recall.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from faster_whisper.vad import VadOptions  # noqa: E402
from speech_coverage import VOICES, measure, speak, telephone_audio  # noqa: E402

from transcripts.engine import VAD_OPTIONS, VAD_THRESHOLD  # noqa: E402

SETTINGS = {
    "default (0.5, pad 400 ms)": VadOptions(),
    f"engine ({VAD_THRESHOLD}, pad 400 ms)": VAD_OPTIONS,
    "0.5, no pad": VadOptions(min_silence_duration_ms=100, speech_pad_ms=0),
    f"{VAD_THRESHOLD}, no pad": VadOptions(
        threshold=VAD_THRESHOLD, min_silence_duration_ms=100, speech_pad_ms=0
    ),
}


def main() -> None:
    print("| voice | speech s | " + " | ".join(SETTINGS) + " |")
    print("| --- | --- |" + " --- |" * len(SETTINGS))
    for voice in VOICES:
        track = speak(voice)
        audio = telephone_audio(track.clean)
        cells = []
        for options in SETTINGS.values():
            coverage = measure(track, audio, options)
            cells.append(
                f"{coverage.kept_fraction:.1%} "
                f"({coverage.utterances_missed}/{coverage.utterances} lost)"
            )
        speech = measure(track, audio, VAD_OPTIONS).speech_seconds
        print(f"| {voice.label} | {speech:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
