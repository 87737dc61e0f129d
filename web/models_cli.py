"""`touchline models convert`: write an openai-whisper checkpoint.

The checkpoint is converted from the CTranslate2 weights that faster-whisper
loads, so the openai-whisper engine runs without downloading anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from capture.settings import load_settings
from transcripts.ctranslate2_weights import WeightsError
from transcripts.whisper_models import ModelError, resolve_model


def add_commands(commands: Any) -> None:
    """Add the `models` command group to the top-level subparsers."""
    models = commands.add_parser("models", help="Whisper models").add_subparsers(
        required=True, metavar="ACTION"
    )
    convert = models.add_parser(
        "convert",
        help="write an openai-whisper checkpoint from a CTranslate2 model",
    )
    convert.add_argument(
        "model",
        help="tiny.en, base or the path of a CTranslate2 model folder",
    )
    convert.add_argument(
        "--output",
        type=Path,
        help="checkpoint file to write (default: the file the openai-whisper "
        "engine loads for MODEL, under data_dir/models/openai-whisper)",
    )
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    try:
        # Imported here because PyTorch is part of the openai-whisper extra.
        from transcripts.openai_checkpoint import checkpoint_path, convert
    except ImportError as error:
        print(
            f"touchline: the openai-whisper extra is not installed ({error}). "
            "Run `make install`.",
            file=sys.stderr,
        )
        return 1
    output = args.output or checkpoint_path(args.model, settings.data_dir)
    try:
        model_dir = resolve_model(args.model, settings.data_dir)
        convert(model_dir, output)
    except (ModelError, WeightsError) as error:
        print(f"touchline: {error}", file=sys.stderr)
        return 1
    print(output)
    return 0
