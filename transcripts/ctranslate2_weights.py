"""Read the weights of a CTranslate2 Whisper model.bin as float32 arrays.

The layout is the one ctranslate2 4.x writes in
ctranslate2/specs/model_spec.py (`ModelSpec._serialize`, binary version 6),
all integers little-endian:

- uint32 binary version, then the spec name and a uint32 revision.
- uint32 variable count, then per variable: its name, a uint8 rank, one
  uint32 per dimension, a uint8 type id (0 float32, 1 int8, 2 int16,
  3 int32, 4 float16, 5 bfloat16), a uint32 byte count and the raw bytes.
- uint32 alias count, then (alias, variable name) pairs.

A string is a uint16 length that counts a trailing NUL, the UTF-8 bytes
and the NUL.

A quantised weight `X` is stored next to `X_scale`. ctranslate2 quantises
to int8 per output row (q = round(w * scale[row]), scale = 127 / max |w| of
the row, with a conv1d weight flattened to 2-D first) and to int16 with one
scalar scale (q = round(w * scale)). Both are undone here by dividing by
the scale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

SUPPORTED_BINARY_VERSIONS = (5, 6)
SCALE_SUFFIX = "_scale"
_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}


class WeightsError(ValueError):
    """A model.bin that is truncated, of an unknown version or not Whisper."""


@dataclass(frozen=True)
class RawVariable:
    """A variable as stored: its shape, CTranslate2 type name and bytes."""

    shape: tuple[int, ...]
    dtype: str
    data: bytes


@dataclass(frozen=True)
class ModelFile:
    """The parsed contents of a model.bin."""

    spec_name: str
    revision: int
    variables: dict[str, RawVariable]
    aliases: dict[str, str]


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.position = 0

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.position + size > len(self.data):
            raise WeightsError(f"Model file {self.path} is truncated.")
        (value,) = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return int(value)

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise WeightsError(f"Model file {self.path} is truncated.")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def string(self) -> str:
        length = self.unpack("<H")
        raw = self.take(length)
        return raw[:-1].decode("utf-8")


def read_model_file(path: Path) -> ModelFile:
    """Parse a CTranslate2 model.bin. Raises WeightsError when it is invalid."""
    reader = _Reader(path.read_bytes(), path)
    version = reader.unpack("<I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise WeightsError(
            f"Model file {path} has binary version {version}; only versions "
            f"{', '.join(map(str, SUPPORTED_BINARY_VERSIONS))} are supported."
        )
    spec_name = reader.string()
    revision = reader.unpack("<I")
    variables: dict[str, RawVariable] = {}
    for _ in range(reader.unpack("<I")):
        name = reader.string()
        rank = reader.unpack("<B")
        shape = tuple(reader.unpack("<I") for _ in range(rank))
        type_id = reader.unpack("<B")
        if type_id not in _DTYPES:
            raise WeightsError(
                f"Model file {path}: variable {name} has unknown type id {type_id}."
            )
        size = reader.unpack("<I")
        variables[name] = RawVariable(shape, _DTYPES[type_id], reader.take(size))
    aliases = {reader.string(): reader.string() for _ in range(reader.unpack("<I"))}
    return ModelFile(spec_name, revision, variables, aliases)


def to_array(variable: RawVariable) -> npt.NDArray[np.generic]:
    """Return the variable's values as a numpy array of its stored type."""
    if variable.dtype == "bfloat16":
        # bfloat16 is the upper half of a float32, and numpy has no such type.
        upper = np.frombuffer(variable.data, dtype="<u2").astype(np.uint32)
        values: npt.NDArray[np.generic] = (upper << 16).view(np.float32)
    else:
        values = np.frombuffer(variable.data, dtype=np.dtype(variable.dtype))
    return values.reshape(variable.shape)


def float_weights(model: ModelFile) -> dict[str, npt.NDArray[np.float32]]:
    """Return every weight as float32, dequantised, with aliases resolved.

    Scalars that configure the layers (such as num_heads) and the `_scale`
    variables themselves are left out.
    """
    weights: dict[str, npt.NDArray[np.float32]] = {}
    for name, variable in model.variables.items():
        if name.endswith(SCALE_SUFFIX) or not variable.shape:
            continue
        scale = model.variables.get(name + SCALE_SUFFIX)
        weights[name] = _dequantise(name, variable, scale)
    for alias, target in model.aliases.items():
        if target in weights:
            weights[alias] = weights[target]
    return weights


def _dequantise(
    name: str, variable: RawVariable, scale: RawVariable | None
) -> npt.NDArray[np.float32]:
    values = to_array(variable).astype(np.float32)
    if variable.dtype in ("float32", "float16", "bfloat16"):
        return values
    if scale is None:
        raise WeightsError(f"Quantised variable {name} has no {name}{SCALE_SUFFIX}.")
    scales = to_array(scale).astype(np.float32)
    if scales.ndim == 0 or scales.size == 1:
        return values / scales.reshape(())
    rows = values.reshape(values.shape[0], -1) / scales[:, np.newaxis]
    return rows.reshape(values.shape)


def scalar(model: ModelFile, name: str) -> int:
    """Return the integer value of a scalar variable such as encoder/num_heads."""
    variable = model.variables.get(name)
    if variable is None or variable.shape:
        raise WeightsError(f"Model has no scalar variable {name}.")
    return int(to_array(variable).item())
