"""Super SloMo frame interpolation for VapourSynth."""

from __future__ import annotations

from typing import Any

from .checkpoint import ModelFileError, load_model, save_model
from .engine import Interpolator
from .network import ModelConfig, SuperSloMo
from .options import Options

__all__ = ["Interpolator", "ModelConfig", "ModelFileError", "Options", "SuperSloMo", "interpolate", "load_model",
           "save_model"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The VapourSynth glue is imported on first use so that training and the engine never need it.
    if name == "interpolate":
        from .filter import interpolate

        return interpolate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
