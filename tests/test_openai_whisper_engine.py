"""The openai-whisper engine and the conversion of CTranslate2 weights for it."""

from __future__ import annotations

import os

# Set before faster-whisper imports huggingface_hub, which reads it at import.
os.environ["HF_HUB_OFFLINE"] = "1"

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from audio import assemble_turns, synthesize_speech, write_wav
from ctranslate2.specs import model_spec, whisper_spec
from test_transcription_engine import (
    BUYER_SENTENCE,
    SELLER_SENTENCE,
    channel_words,
)
from whisper.model import ModelDimensions, Whisper

from transcripts.ctranslate2_weights import (
    WeightsError,
    float_weights,
    read_model_file,
    to_array,
)
from transcripts.engine import (
    Engine,
    FasterWhisperEngine,
    TranscriptResult,
    load_engine,
)
from transcripts.openai_checkpoint import (
    checkpoint_path,
    convert,
    load_checkpoint,
    resolve_checkpoint,
)
from transcripts.openai_engine import OpenAIWhisperEngine
from transcripts.whisper_models import (
    TINY_EN_MODEL_SHA256,
    ModelError,
    resolve_model,
)

TOUCHLINE = str(Path(sys.executable).with_name("touchline"))
TINY_EN_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51864,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def tiny_dir(data_dir: Path) -> Path:
    return resolve_model("tiny.en", data_dir)


def touchline_models(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `touchline models ARGS` in its own process with data_dir set."""
    config = data_dir / "touchline.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHLINE_")}
    env |= {
        "TOUCHLINE_TWILIO_AUTH_TOKEN": "unused-by-models-convert",
        "TOUCHLINE_SECRET_KEY": "unused-by-models-convert-0123456789abcdef",
        "TOUCHLINE_DATABASE_URL": f"sqlite:///{data_dir / 'unused.db'}",
    }
    return subprocess.run(
        [TOUCHLINE, "--config", str(config), "models", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """tiny.en converted by `touchline models convert` in its own process."""
    output = tmp_path_factory.mktemp("converted") / "tiny.en.pt"
    result = touchline_models(data_dir, "convert", "tiny.en", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(output)
    return output


def test_convert_command_unknown_model(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    result = touchline_models(tmp_path, "convert", str(missing))

    assert result.returncode == 1
    assert f"Unknown model '{missing}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_convert_dims_of_tiny_en(converted: Path) -> None:
    checkpoint = load_checkpoint(converted)
    assert checkpoint["dims"] == TINY_EN_DIMS
    assert checkpoint["source_sha256"] == TINY_EN_MODEL_SHA256


def test_convert_loads_strictly(converted: Path) -> None:
    checkpoint = load_checkpoint(converted)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))

    # strict: every parameter and buffer present, with its shape.
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)

    assert not model.is_multilingual
    for name, tensor in checkpoint["model_state_dict"].items():
        assert tensor.dtype == torch.float32, name


def test_convert_splits_fused_attention(converted: Path, tiny_dir: Path) -> None:
    source = float_weights(read_model_file(tiny_dir / "model.bin"))
    state = load_checkpoint(converted)["model_state_dict"]
    fused = source["decoder/layer_1/self_attention/linear_0/weight"]
    fused_bias = source["decoder/layer_1/self_attention/linear_0/bias"]
    cross = source["decoder/layer_1/attention/linear_1/weight"]

    query = state["decoder.blocks.1.attn.query.weight"].numpy()
    key = state["decoder.blocks.1.attn.key.weight"].numpy()
    value_bias = state["decoder.blocks.1.attn.value.bias"].numpy()
    cross_value = state["decoder.blocks.1.cross_attn.value.weight"].numpy()

    np.testing.assert_array_equal(query, fused[:384])
    np.testing.assert_array_equal(key, fused[384:768])
    np.testing.assert_array_equal(value_bias, fused_bias[768:])
    np.testing.assert_array_equal(cross_value, cross[384:])
    assert not fused_bias[384:768].any(), "Whisper's key projection has no bias"


def test_convert_keeps_alignment_heads(converted: Path) -> None:
    heads = load_checkpoint(converted)["alignment_heads"]
    assert heads == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]


def quantised_copy(model_dir: Path, target: Path, quantization: str) -> Path:
    """Write `model_dir` quantised by ctranslate2's own spec code into `target`."""
    model = read_model_file(model_dir / "model.bin")
    spec = whisper_spec.WhisperSpec(4, 6, 4, 6)
    for name, variable in model.variables.items():
        if variable.shape:
            scope, attribute = model_spec._parent_scope(name)
            layer = model_spec.index_spec(spec, scope)
            setattr(layer, attribute, to_array(variable).copy())
    spec.decoder.projection.weight = spec.decoder.embeddings.weight
    spec.register_vocabulary((model_dir / "vocabulary.txt").read_text().splitlines())
    spec.validate()
    spec.optimize(quantization)
    target.mkdir()
    spec.save(str(target))
    return target


@pytest.mark.parametrize("quantization", ["int8", "int16"])
def test_dequantise_within_half_step(
    tmp_path: Path, tiny_dir: Path, quantization: str
) -> None:
    quantised_dir = quantised_copy(tiny_dir, tmp_path / "quantised", quantization)
    quantised = read_model_file(quantised_dir / "model.bin")
    original = float_weights(read_model_file(tiny_dir / "model.bin"))
    name = "encoder/layer_2/ffn/linear_0/weight"
    assert quantised.variables[name].dtype == quantization
    assert name + "_scale" in quantised.variables

    restored = float_weights(quantised)

    for name in (
        "encoder/conv1/weight",
        "encoder/layer_2/ffn/linear_0/weight",
        "decoder/layer_3/self_attention/linear_0/weight",
        "decoder/embeddings/weight",
    ):
        expected = original[name]
        rows = expected.reshape(expected.shape[0], -1)
        if quantization == "int8":
            amax = np.abs(rows).max(axis=1, keepdims=True)
            step = (amax / 127.0).reshape(expected.shape[0], *[1] * (expected.ndim - 1))
        else:
            step = np.full_like(expected, np.abs(expected).max() / 2**10)
        error = np.abs(restored[name] - expected)
        assert (error <= step / 2 * 1.001 + 1e-7).all(), name
        assert restored[name].shape == expected.shape, name


def test_convert_quantised_model_loads(tmp_path: Path, tiny_dir: Path) -> None:
    quantised_dir = quantised_copy(tiny_dir, tmp_path / "int8", "int8")

    output = convert(quantised_dir, tmp_path / "int8.pt")

    checkpoint = load_checkpoint(output)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)


def test_convert_rejects_truncated_model(tmp_path: Path, tiny_dir: Path) -> None:
    model_dir = tmp_path / "truncated"
    model_dir.mkdir()
    (model_dir / "model.bin").write_bytes((tiny_dir / "model.bin").read_bytes()[:5000])
    output = tmp_path / "out.pt"

    with pytest.raises(WeightsError, match="truncated"):
        convert(model_dir, output)

    assert not output.exists()
    assert list(tmp_path.glob(".out.pt.*")) == []


def test_load_checkpoint_rejects_other_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ModelError, match="'dims' and 'model_state_dict'"):
        load_checkpoint(path)


def test_load_checkpoint_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_checkpoint(str(tmp_path / "absent.pt"), tmp_path)


def test_resolve_checkpoint_reconverts_stale(tmp_path: Path) -> None:
    path = checkpoint_path("tiny.en", tmp_path)
    path.parent.mkdir(parents=True)
    torch.save({"dims": {}, "model_state_dict": {}, "source_sha256": "0" * 64}, path)

    checkpoint = resolve_checkpoint("tiny.en", tmp_path)

    assert checkpoint["source_sha256"] == TINY_EN_MODEL_SHA256
    assert load_checkpoint(path)["dims"] == TINY_EN_DIMS


@pytest.fixture(scope="module")
def call_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    turns = [
        (1, synthesize_speech(SELLER_SENTENCE)),
        (2, synthesize_speech(BUYER_SENTENCE)),
    ]
    path = tmp_path_factory.mktemp("call") / "call.wav"
    return write_wav(path, assemble_turns(turns))


@pytest.fixture(scope="module")
def openai_engine(converted: Path) -> Iterator[Engine]:
    threads = torch.get_num_threads()
    yield load_engine("openai-whisper", str(converted), converted.parent)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference_result(call_path: Path, tiny_dir: Path) -> TranscriptResult:
    """faster-whisper's transcript of the call at float32, as converted."""
    reference = FasterWhisperEngine(
        tiny_dir, "tiny.en", language=None, cpu_threads=0, compute_type="float32"
    )
    return reference.transcribe(call_path)


@pytest.fixture(scope="module")
def openai_result(call_path: Path, openai_engine: Engine) -> TranscriptResult:
    """openai-whisper's transcript of the call, with every connection refused."""

    def reject(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network connection attempted to {address!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", reject)
        patch.setattr(socket.socket, "connect_ex", reject)
        return openai_engine.transcribe(call_path)


@pytest.mark.speech
def test_openai_matches_faster_whisper_float32(
    openai_result: TranscriptResult, reference_result: TranscriptResult
) -> None:
    for channel in (1, 2):
        words = channel_words(openai_result, channel)
        assert words, f"channel {channel} has no words"
        assert words == channel_words(reference_result, channel), f"channel {channel}"
    assert openai_result.language == "en"
    assert [s.channel for s in openai_result.segments] == [1, 2]


@pytest.mark.speech
def test_openai_segment_times_and_confidence(
    openai_result: TranscriptResult, reference_result: TranscriptResult
) -> None:
    pairs = zip(openai_result.segments, reference_result.segments, strict=True)
    for segment, other in pairs:
        assert segment.start == pytest.approx(other.start, abs=0.1), segment
        assert segment.end == pytest.approx(other.end, abs=0.1), segment
        assert 0.0 < segment.confidence <= 1.0, segment


def test_load_engine_openai_converts_once(data_dir: Path) -> None:
    engine = load_engine("openai-whisper", "tiny.en", data_dir)

    assert isinstance(engine, OpenAIWhisperEngine)
    assert engine.name == "openai-whisper"
    assert engine.model_name == "tiny.en"
    assert checkpoint_path("tiny.en", data_dir).is_file()
    assert load_engine("openai-whisper", "tiny.en", data_dir) is engine
