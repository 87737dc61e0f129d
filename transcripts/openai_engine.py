"""Whisper through openai-whisper (PyTorch) as a second engine.

It decodes the same packed speech with the same thresholds as
FasterWhisperEngine, and its segments go through the same guards, so the
two engines differ only in the inference library. openai-whisper and
PyTorch are an optional extra, imported when this engine loads.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from collections.abc import Iterable
from typing import Any

from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import Word

from transcripts.engine import (
    COMPRESSION_RATIO_THRESHOLD,
    DEFAULT_BEAM_SIZE,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    OPENAI_WHISPER,
    ChannelEngine,
)
from transcripts.speech_pack import SpeechPack

logger = logging.getLogger(__name__)

# Candidates sampled at each fallback temperature above 0, as faster-whisper
# 1.2 does by default (openai-whisper's transcribe() samples only one).
BEST_OF = 5


class OpenAIWhisperEngine(ChannelEngine):
    """Whisper on CPU through openai-whisper, from a converted checkpoint."""

    name = OPENAI_WHISPER

    def __init__(
        self,
        checkpoint: dict[str, Any],
        model_name: str,
        language: str | None,
        cpu_threads: int,
        beam_size: int = DEFAULT_BEAM_SIZE,
    ) -> None:
        """Build the model from a checkpoint returned by resolve_checkpoint.

        `cpu_threads` above 0 sets PyTorch's thread count for the whole
        process. 0 keeps PyTorch's default, one thread per core.
        """
        import torch
        from whisper.model import ModelDimensions, Whisper

        started = time.monotonic()
        if cpu_threads > 0:
            torch.set_num_threads(cpu_threads)
        self.model_name = model_name
        self.language = language
        self.beam_size = beam_size
        dims = ModelDimensions(**checkpoint["dims"])
        self._model = Whisper(dims)
        self._model.load_state_dict(checkpoint["model_state_dict"])
        self._model.eval()
        heads = checkpoint.get("alignment_heads")
        if heads:
            self._set_alignment_heads(heads)
        self._load_tokenizer()
        logger.info(
            "Loaded openai-whisper model %s in %.2f s",
            model_name,
            time.monotonic() - started,
        )

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.is_multilingual)

    def _set_alignment_heads(self, heads: list[list[int]]) -> None:
        """Use the model's own cross-attention heads for word times.

        openai-whisper knows them only for the models it downloads by name
        and otherwise uses every head of the upper half of the decoder.
        """
        import torch

        dims = self._model.dims
        mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        self._model.register_buffer(
            "alignment_heads", mask.to_sparse(), persistent=False
        )

    def _load_tokenizer(self) -> None:
        """Read the tokenizer file from openai-whisper's package once.

        get_encoding is cached, so transcribe() reuses it. openai-whisper
        20250625 leaves that file for the garbage collector to close, which
        raises a ResourceWarning, silenced here.
        """
        from whisper.tokenizer import get_encoding

        name = "multilingual" if self._model.is_multilingual else "gpt2"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            # Keywords as in get_tokenizer, so the lru_cache key matches.
            get_encoding(name=name, num_languages=self._model.num_languages)
            # The file object is in a reference cycle, so only the cycle
            # collector closes it, and it must run while the filter holds.
            gc.collect()

    def _decode(self, pack: SpeechPack) -> tuple[Iterable[WhisperSegment], str]:
        """Return the segments of the packed speech, in its times, and language."""
        import whisper

        result = whisper.transcribe(
            self._model,
            pack.audio,
            verbose=None,
            language=self.language,
            beam_size=self.beam_size,
            best_of=BEST_OF,
            condition_on_previous_text=False,
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            logprob_threshold=LOG_PROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD,
            word_timestamps=True,
            fp16=False,
        )
        segments = [_whisper_segment(segment) for segment in result["segments"]]
        return segments, str(result["language"])


def _whisper_segment(segment: dict[str, Any]) -> WhisperSegment:
    """Convert an openai-whisper segment dict to faster-whisper's Segment."""
    words = [
        Word(
            start=float(word["start"]),
            end=float(word["end"]),
            word=str(word["word"]),
            probability=float(word["probability"]),
        )
        for word in segment.get("words", [])
    ]
    return WhisperSegment(
        id=int(segment["id"]),
        seek=int(segment["seek"]),
        start=float(segment["start"]),
        end=float(segment["end"]),
        text=str(segment["text"]),
        tokens=list(segment["tokens"]),
        avg_logprob=float(segment["avg_logprob"]),
        compression_ratio=float(segment["compression_ratio"]),
        no_speech_prob=float(segment["no_speech_prob"]),
        words=words or None,
        temperature=float(segment["temperature"]),
    )
