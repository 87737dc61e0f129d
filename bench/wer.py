"""Word error rate with the text normalised the way transcripts differ.

Whisper writes numbers as digits ("15%", "3 o'clock") where a script spells
them ("fifteen percent", "three o'clock"), so both sides are lower-cased,
stripped of punctuation, and runs of English number words are rewritten as
digits before the words are aligned.
"""

from __future__ import annotations

import re

UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# Punctuation ends a number, so "twenty, three" stays two numbers.
_CLAUSE = re.compile(r"[.,;:!?]+(?:\s|$)")
_TOKEN = re.compile(r"[a-z0-9']+|%")


def normalise(text: str) -> list[str]:
    """Return the words of `text`, lower-case, with numbers as digits."""
    words: list[str] = []
    for clause in _CLAUSE.split(text.lower()):
        tokens = _TOKEN.findall(clause)
        words.extend(_join_numbers(["percent" if t == "%" else t for t in tokens]))
    return words


def _join_numbers(tokens: list[str]) -> list[str]:
    """Replace each run of number words by its value in digits."""
    words: list[str] = []
    run: list[str] = []
    for token in tokens:
        if run and _starts_new_number(run[-1], token):
            words.append(str(_number(run)))
            run = []
        if token in UNITS or token in TENS or (token in SCALES and run):
            run.append(token)
            continue
        if run:
            words.append(str(_number(run)))
            run = []
        words.append(token)
    if run:
        words.append(str(_number(run)))
    return words


def _starts_new_number(previous: str, token: str) -> bool:
    """True if `token` cannot continue a number that ends with `previous`.

    "twenty three" is one number, but "two three" and "twenty thirty" are
    two.
    """
    if previous in UNITS:
        return token in UNITS or token in TENS
    if previous in TENS:
        return token in TENS or UNITS.get(token, 1) >= 10 or token == "zero"
    return False


def _number(words: list[str]) -> int:
    """Return the value of number words such as ["two", "hundred", "five"]."""
    total = 0
    current = 0
    for word in words:
        if word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * SCALES[word]
            current = 0
    return total + current


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Return the word substitutions, deletions and insertions between both."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        current = [i]
        for j, other in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (word != other),
                )
            )
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return (errors, reference words) after normalising both texts."""
    reference_words = normalise(reference)
    return edit_distance(reference_words, normalise(hypothesis)), len(reference_words)
