"""Synthesised two-party sales calls for `touchline simulate`.

Each call gets a short scripted conversation. espeak-ng speaks every sentence
and sox resamples it to 8 kHz 16-bit mono PCM. The sentences are then laid out
on a dual-channel WAV, and each channel is silent while the other side speaks.

Channel 1 is the parent leg, as in Twilio's dual-channel recordings: the rep
on a REST-created (click-to-call) call, the customer on an inbound call
bridged with `<Dial>`.
"""

import asyncio
import hashlib
import logging
import math
import random
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
REP_VOICE = "en-us"
CUSTOMER_VOICES = ("en-gb", "en-us+f3")
SPEECH_RATE_WPM = 160
LEADING_SILENCE_S = 0.3
PAUSE_BETWEEN_TURNS_S = 0.4

# Sentences carry distinctive words (pricing, contract, Thursday, invoice,
# renewal, ...) so a test can look for them in a transcript.
REP_SENTENCES = (
    "Hi, I am calling from Touchline about your contract renewal.",
    "I can send over the updated pricing for the premium plan this afternoon.",
    "Would Thursday at two work for a product demo with your team?",
    "The invoice for March went out last week, did it reach accounts payable?",
    "We can keep the current rate if you sign the three year contract.",
    "I will put together a quote for fifty seats and email it by Friday.",
    "Our onboarding specialist can walk your staff through the dashboard.",
    "Let me ask finance about extending the discount to your second warehouse.",
)

CUSTOMER_SENTENCES = (
    "Thursday works, but please send the invite to our operations manager.",
    "The pricing looks high compared to the quote we got in January.",
    "We never received the invoice, can you send it again to billing?",
    "Our budget renewal is in September, so we cannot commit before then.",
    "Can the demo cover the reporting features and the mobile app?",
    "Please email the contract, our lawyer needs to review the cancellation clause.",
    "We would like to add twenty more licenses for the new clinic.",
    "Call me back next Tuesday after the board meeting.",
)

REP_CHANNEL = 0
CUSTOMER_CHANNEL = 1


@dataclass(frozen=True)
class Utterance:
    channel: int  # REP_CHANNEL or CUSTOMER_CHANNEL (WAV channel 1 or 2)
    voice: str
    text: str


@dataclass(frozen=True)
class Conversation:
    """The sentences of one call in speaking order."""

    utterances: tuple[Utterance, ...]

    def sentences(self, channel: int) -> list[str]:
        return [u.text for u in self.utterances if u.channel == channel]


def plan_conversation(rng: random.Random) -> Conversation:
    """Pick one or two sentences per side and alternate them, rep first."""
    customer_voice = rng.choice(CUSTOMER_VOICES)
    rep_lines = rng.sample(REP_SENTENCES, rng.randint(1, 2))
    customer_lines = rng.sample(CUSTOMER_SENTENCES, rng.randint(1, 2))

    utterances: list[Utterance] = []
    for turn in range(max(len(rep_lines), len(customer_lines))):
        if turn < len(rep_lines):
            utterances.append(Utterance(REP_CHANNEL, REP_VOICE, rep_lines[turn]))
        if turn < len(customer_lines):
            utterances.append(
                Utterance(CUSTOMER_CHANNEL, customer_voice, customer_lines[turn])
            )
    return Conversation(tuple(utterances))


def check_speech_tools() -> None:
    """Raise RuntimeError unless espeak-ng and sox are on PATH."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not found on PATH. Install espeak-ng and sox "
            "to synthesise call recordings."
        )


class SpeechSynthesizer:
    """Render conversations to dual-channel WAVs, caching each spoken sentence."""

    def __init__(self, work_dir: Path, max_processes: int = 4) -> None:
        self._work_dir = work_dir
        self._semaphore = asyncio.Semaphore(max_processes)
        # One task per (voice, text), so concurrent renders of the same
        # sentence share a single espeak-ng run and never race on its file.
        self._clips: dict[tuple[str, str], asyncio.Task[np.ndarray]] = {}

    async def render(
        self, conversation: Conversation, path: Path, *, rep_first: bool = True
    ) -> int:
        """Write the conversation to `path` and return its length in seconds.

        With `rep_first` the rep speaks on channel 1, else on channel 2.

        The audio is padded with silence to a whole number of seconds, so the
        returned length is exact and equals the WAV's frame count / 8000.
        """
        clips = [await self._speak(u.voice, u.text) for u in conversation.utterances]
        stereo = _lay_out_turns(conversation.utterances, clips)
        if not rep_first:
            stereo = np.ascontiguousarray(stereo[:, ::-1])
        write_stereo_wav(path, stereo)
        return stereo.shape[0] // SAMPLE_RATE_HZ

    async def _speak(self, voice: str, text: str) -> np.ndarray:
        key = (voice, text)
        task = self._clips.get(key)
        if task is None:
            task = asyncio.create_task(self._synthesize(voice, text))
            self._clips[key] = task
        return await task

    async def _synthesize(self, voice: str, text: str) -> np.ndarray:
        async with self._semaphore:
            return await self._synthesize_unlimited(voice, text)

    async def _synthesize_unlimited(self, voice: str, text: str) -> np.ndarray:
        digest = hashlib.sha1(f"{voice}\n{text}".encode()).hexdigest()[:16]
        wav_path = self._work_dir / f"speech-{digest}.wav"
        # Text goes through stdin so that a sentence is never parsed as an option.
        await _run_tool(
            ["espeak-ng", "-v", voice, "-s", str(SPEECH_RATE_WPM), "-w", str(wav_path)],
            stdin=text.encode(),
        )
        try:
            raw = await _run_tool(
                [
                    "sox",
                    str(wav_path),
                    *("-t", "raw", "-r", str(SAMPLE_RATE_HZ)),
                    *("-e", "signed-integer", "-b", "16", "-c", "1", "-"),
                ],
            )
        finally:
            wav_path.unlink(missing_ok=True)
        return np.frombuffer(raw, dtype="<i2")


async def _run_tool(command: list[str], stdin: bytes | None = None) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate(stdin if stdin is not None else b"")
    if process.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed with exit status {process.returncode}: "
            f"{stderr.decode(errors='replace').strip()[:300]}"
        )
    return stdout


def _lay_out_turns(
    utterances: tuple[Utterance, ...], clips: list[np.ndarray]
) -> np.ndarray:
    """Place the clips one after another, each on its speaker's channel.

    Returns int16 frames of shape (n, 2), padded to a whole number of seconds.
    """
    pause = int(PAUSE_BETWEEN_TURNS_S * SAMPLE_RATE_HZ)
    position = int(LEADING_SILENCE_S * SAMPLE_RATE_HZ)
    starts = []
    for clip in clips:
        starts.append(position)
        position += clip.shape[0] + pause

    total_frames = math.ceil(position / SAMPLE_RATE_HZ) * SAMPLE_RATE_HZ
    stereo = np.zeros((total_frames, 2), dtype=np.int16)
    for utterance, clip, start in zip(utterances, clips, starts, strict=True):
        stereo[start : start + clip.shape[0], utterance.channel] = clip
    return stereo


def write_stereo_wav(path: Path, frames: np.ndarray) -> None:
    """Write int16 frames of shape (n, 2) as an 8 kHz 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(frames.astype("<i2").tobytes())
