"""Convert a CTranslate2 Whisper model into an openai-whisper checkpoint.

openai-whisper loads a torch file containing `dims` (a ModelDimensions
dict) and `model_state_dict`. Its own loader downloads the weights, and
Touchline downloads nothing at run time, so the checkpoint is written from
the same model.bin that faster-whisper loads. Weights are stored as float32.

CTranslate2 fuses the query, key and value projections of self-attention
into one linear layer (and key and value of cross-attention), with a zero
bias for the key, which has none in Whisper. They are split again here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from transcripts.ctranslate2_weights import (
    ModelFile,
    WeightsError,
    float_weights,
    read_model_file,
    scalar,
)
from transcripts.whisper_models import (
    BASE_MODEL_SHA256,
    TINY_EN_MODEL_SHA256,
    ModelError,
    resolve_model,
    sha256_file,
)

logger = logging.getLogger(__name__)

WHISPER_SPEC_NAME = "WhisperSpec"
CHECKPOINT_SUFFIX = ".pt"
NAMED_MODELS = ("tiny.en", "base")
Weights = dict[str, npt.NDArray[np.float32]]


def convert(model_dir: Path, output: Path) -> Path:
    """Write the CTranslate2 model in `model_dir` as an openai-whisper checkpoint.

    The file is written to a temporary name beside `output` and renamed, so
    `output` is never partial. The checkpoint also stores the model's
    alignment heads from config.json and the SHA-256 of its model.bin.
    Raises WeightsError for a model.bin that is not a Whisper model.
    """
    import torch

    started = time.monotonic()
    model_bin = model_dir / "model.bin"
    model = read_model_file(model_bin)
    if model.spec_name != WHISPER_SPEC_NAME:
        raise WeightsError(
            f"Model file {model_bin} contains a {model.spec_name}, not a Whisper model."
        )
    weights = float_weights(model)
    dims = model_dimensions(model, weights)
    state = {
        name: torch.from_numpy(np.ascontiguousarray(value))
        for name, value in state_dict(weights, dims).items()
    }
    checkpoint: dict[str, Any] = {
        "dims": dims,
        "model_state_dict": state,
        "alignment_heads": _alignment_heads(model_dir),
        "source_sha256": sha256_file(model_bin),
    }
    _save_atomically(checkpoint, output)
    logger.info(
        "Converted %s into openai-whisper checkpoint %s in %.1f s",
        model_dir,
        output,
        time.monotonic() - started,
    )
    return output


def model_dimensions(model: ModelFile, weights: Weights) -> dict[str, int]:
    """Return openai-whisper's ModelDimensions fields for the model."""
    conv1 = weights["encoder/conv1/weight"]
    audio_positions = weights["encoder/position_encodings/encodings"]
    text_positions = weights["decoder/position_encodings/encodings"]
    embeddings = weights["decoder/embeddings/weight"]
    return {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": audio_positions.shape[0],
        "n_audio_state": audio_positions.shape[1],
        "n_audio_head": scalar(model, "encoder/num_heads"),
        "n_audio_layer": _count_layers(weights, "encoder"),
        "n_vocab": embeddings.shape[0],
        "n_text_ctx": text_positions.shape[0],
        "n_text_state": text_positions.shape[1],
        "n_text_head": scalar(model, "decoder/num_heads"),
        "n_text_layer": _count_layers(weights, "decoder"),
    }


def state_dict(weights: Weights, dims: dict[str, int]) -> Weights:
    """Map CTranslate2 variable names and fused layers to openai-whisper's."""
    state: Weights = {
        "encoder.conv1.weight": weights["encoder/conv1/weight"],
        "encoder.conv1.bias": weights["encoder/conv1/bias"],
        "encoder.conv2.weight": weights["encoder/conv2/weight"],
        "encoder.conv2.bias": weights["encoder/conv2/bias"],
        "encoder.positional_embedding": weights["encoder/position_encodings/encodings"],
        "encoder.ln_post.weight": weights["encoder/layer_norm/gamma"],
        "encoder.ln_post.bias": weights["encoder/layer_norm/beta"],
        "decoder.token_embedding.weight": weights["decoder/embeddings/weight"],
        "decoder.positional_embedding": weights["decoder/position_encodings/encodings"],
        "decoder.ln.weight": weights["decoder/layer_norm/gamma"],
        "decoder.ln.bias": weights["decoder/layer_norm/beta"],
    }
    for index in range(dims["n_audio_layer"]):
        source = f"encoder/layer_{index}"
        target = f"encoder.blocks.{index}"
        state |= _self_attention(weights, source, target)
        state |= _mlp(weights, source, target)
    for index in range(dims["n_text_layer"]):
        source = f"decoder/layer_{index}"
        target = f"decoder.blocks.{index}"
        state |= _self_attention(weights, source, target)
        state |= _cross_attention(weights, source, target)
        state |= _mlp(weights, source, target)
    return state


def _self_attention(weights: Weights, source: str, target: str) -> Weights:
    scope = f"{source}/self_attention"
    query, key, value = np.split(weights[f"{scope}/linear_0/weight"], 3)
    query_bias, _, value_bias = np.split(weights[f"{scope}/linear_0/bias"], 3)
    return {
        f"{target}.attn.query.weight": query,
        f"{target}.attn.query.bias": query_bias,
        f"{target}.attn.key.weight": key,
        f"{target}.attn.value.weight": value,
        f"{target}.attn.value.bias": value_bias,
        f"{target}.attn.out.weight": weights[f"{scope}/linear_1/weight"],
        f"{target}.attn.out.bias": weights[f"{scope}/linear_1/bias"],
        f"{target}.attn_ln.weight": weights[f"{scope}/layer_norm/gamma"],
        f"{target}.attn_ln.bias": weights[f"{scope}/layer_norm/beta"],
    }


def _cross_attention(weights: Weights, source: str, target: str) -> Weights:
    scope = f"{source}/attention"
    key, value = np.split(weights[f"{scope}/linear_1/weight"], 2)
    _, value_bias = np.split(weights[f"{scope}/linear_1/bias"], 2)
    return {
        f"{target}.cross_attn.query.weight": weights[f"{scope}/linear_0/weight"],
        f"{target}.cross_attn.query.bias": weights[f"{scope}/linear_0/bias"],
        f"{target}.cross_attn.key.weight": key,
        f"{target}.cross_attn.value.weight": value,
        f"{target}.cross_attn.value.bias": value_bias,
        f"{target}.cross_attn.out.weight": weights[f"{scope}/linear_2/weight"],
        f"{target}.cross_attn.out.bias": weights[f"{scope}/linear_2/bias"],
        f"{target}.cross_attn_ln.weight": weights[f"{scope}/layer_norm/gamma"],
        f"{target}.cross_attn_ln.bias": weights[f"{scope}/layer_norm/beta"],
    }


def _mlp(weights: Weights, source: str, target: str) -> Weights:
    scope = f"{source}/ffn"
    return {
        f"{target}.mlp.0.weight": weights[f"{scope}/linear_0/weight"],
        f"{target}.mlp.0.bias": weights[f"{scope}/linear_0/bias"],
        f"{target}.mlp.2.weight": weights[f"{scope}/linear_1/weight"],
        f"{target}.mlp.2.bias": weights[f"{scope}/linear_1/bias"],
        f"{target}.mlp_ln.weight": weights[f"{scope}/layer_norm/gamma"],
        f"{target}.mlp_ln.bias": weights[f"{scope}/layer_norm/beta"],
    }


def _count_layers(weights: Weights, stack: str) -> int:
    count = 0
    while f"{stack}/layer_{count}/ffn/linear_0/weight" in weights:
        count += 1
    if count == 0:
        raise WeightsError(f"Model has no {stack} layers.")
    return count


def _alignment_heads(model_dir: Path) -> list[list[int]] | None:
    """Return the (layer, head) pairs of config.json used for word times."""
    config_path = model_dir / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        return None
    heads = config.get("alignment_heads")
    if heads is None:
        return None
    return [[int(layer), int(head)] for layer, head in heads]


def _save_atomically(checkpoint: dict[str, Any], output: Path) -> None:
    import torch

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"
    )
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, output)
    finally:
        temp_path.unlink(missing_ok=True)


def checkpoint_path(model: str, data_dir: Path) -> Path:
    """Return where the converted checkpoint of `model` is kept in data_dir.

    "tiny.en" and "base" keep their names. A CTranslate2 model folder is
    named after the folder and a hash of its absolute path, so two folders
    with the same name do not share a file.
    """
    if model in NAMED_MODELS:
        name = model
    else:
        folder = Path(model).expanduser().absolute()
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        name = f"{folder.name}-{digest}"
    return data_dir / "models" / "openai-whisper" / f"{name}.pt"


def is_checkpoint_file(model: str) -> bool:
    """True if `model` names an openai-whisper checkpoint file, not a model."""
    return model.endswith(CHECKPOINT_SUFFIX) or Path(model).expanduser().is_file()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file as plain tensors, never running pickled code."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise ModelError(f"openai-whisper checkpoint not found: {path}") from error
    except (RuntimeError, pickle.UnpicklingError, EOFError) as error:
        raise ModelError(
            f"Failed to load openai-whisper checkpoint {path}: {error}"
        ) from error
    if (
        not isinstance(checkpoint, dict)
        or not {
            "dims",
            "model_state_dict",
        }
        <= checkpoint.keys()
    ):
        raise ModelError(
            f"File {path} is not an openai-whisper checkpoint: it needs the keys "
            "'dims' and 'model_state_dict'."
        )
    return checkpoint


def resolve_checkpoint(model: str, data_dir: Path) -> dict[str, Any]:
    """Return the loaded openai-whisper checkpoint for `model`.

    `model` is a checkpoint file (loaded as it is), or "tiny.en", "base" or
    a CTranslate2 model folder, whose checkpoint is converted into data_dir
    on first use and again when its model.bin changes.
    """
    if is_checkpoint_file(model):
        return load_checkpoint(Path(model).expanduser())
    model_dir = resolve_model(model, data_dir)
    expected = _source_sha256(model, model_dir)
    path = checkpoint_path(model, data_dir)
    if path.is_file():
        checkpoint = load_checkpoint(path)
        if checkpoint.get("source_sha256") == expected:
            return checkpoint
        logger.warning("Converting %s again because its model.bin changed", path)
    convert(model_dir, path)
    return load_checkpoint(path)


def _source_sha256(model: str, model_dir: Path) -> str:
    if model == "tiny.en":
        return TINY_EN_MODEL_SHA256
    if model == "base":
        return BASE_MODEL_SHA256
    return sha256_file(model_dir / "model.bin")
