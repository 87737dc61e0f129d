"""The word error rate of the transcription benchmark (bench/wer.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Loaded by path: with bench/ on sys.path, `reports` would name
# bench/reports.py in the processes the tests start.
_SPEC = importlib.util.spec_from_file_location(
    "bench_wer", Path(__file__).resolve().parents[1] / "bench" / "wer.py"
)
assert _SPEC is not None
assert _SPEC.loader is not None
wer = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_wer"] = wer
_SPEC.loader.exec_module(wer)
edit_distance, normalise, word_errors = (
    wer.edit_distance,
    wer.normalise,
    wer.word_errors,
)


def test_normalise_spelled_numbers_as_digits() -> None:
    spoken = "For two years we take fifteen percent off. Twenty three, ninety nine."
    assert normalise(spoken) == normalise("For 2 years we take 15% off. 23, 99.")


def test_normalise_keeps_separate_numbers_apart() -> None:
    assert normalise("two three") == ["2", "3"]
    assert normalise("twenty, three") == ["20", "3"]
    assert normalise("two hundred five") == ["205"]
    assert normalise("twelve thousand") == ["12000"]


def test_edit_distance_counts_each_kind() -> None:
    assert edit_distance(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["a", "b"], ["a", "b", "c"]) == 1
    assert edit_distance([], ["a"]) == 1


def test_word_errors_ignores_case_and_punctuation() -> None:
    errors, words = word_errors(
        "Thursday afternoon works.", "thursday, afternoon works"
    )
    assert (errors, words) == (0, 3)
