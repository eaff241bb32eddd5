"""Super SloMo frame interpolation for VapourSynth.

Names are imported on first use, so that ``python -m vs_superslomo`` (the CLI) starts without torch and
handles Ctrl-C during start-up, and training and the engine never import VapourSynth.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# torch's OpenMP threads spin while they wait for work. When another process holds a core (an encoder
# in the same pipe), a spinning thread waits for a descheduled sibling: a 640x360 pair took 0.7-1.5 s
# with two threads against 0.30-0.40 s with passive waiting (benchmarks/busy_core.py). OpenMP reads this
# once, when torch loads, so it only applies where we import torch first; a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from .checkpoint import ModelFileError, load_model, save_model
    from .engine import Interpolator
    from .filter import interpolate
    from .network import ModelConfig, SuperSloMo
    from .options import Options

__all__ = ["Interpolator", "ModelConfig", "ModelFileError", "Options", "SuperSloMo", "interpolate", "load_model",
           "save_model"]
__version__ = "0.1.0"

_HOMES = {"ModelFileError": "checkpoint", "load_model": "checkpoint", "save_model": "checkpoint",
          "Interpolator": "engine", "interpolate": "filter", "ModelConfig": "network", "SuperSloMo": "network",
          "Options": "options"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
