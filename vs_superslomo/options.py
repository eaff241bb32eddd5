"""Every option of the filter and the engine, in one frozen object: defaults, choices and checks.

The filter (``interpolate`` and ``core.slomo.Interpolate``), the plugin shim's argument fix-ups, the
CLI's and the evaluator's argparse choices and the engine all derive from :class:`Options`. Adding an
option means adding a field here (and its entry in the C signature of ``csrc/slomo_plugin.c``, which a
test compares with :func:`plugin_signature`).

Nothing here imports torch, OpenCV or VapourSynth, so every layer may import it.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, Field, dataclass, field, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .network import SuperSloMo

DisPreset = Literal["ultrafast", "fast", "medium"]  # OpenCV DIS presets, fastest first
DIS_PRESETS: tuple[DisPreset, ...] = ("ultrafast", "fast", "medium")
FLOW_SCALES = (1.0, 0.5, 0.25)
DEFAULT_FACTOR = 2
DEFAULT_SC_THRESHOLD = 0.12
DEFAULT_DEDUP_THRESHOLD = 0.02
DEFAULT_DEDUP_MAX_RUN = 4

# How each kind of option travels through VapourSynth's plugin API (a bool arrives as an int, a string
# as bytes) and how it is written in the plugin's signature.
_PLUGIN_TYPES = {"int": "int", "float": "float", "bool": "int", "str": "data", "model": "data", "path": "data"}


class OptionError(ValueError):
    """An option with a wrong type or value; the filter reports it as ``slomo: <message>``."""


def _about(kind: str, help: str, choices: tuple[Any, ...] | None = None) -> dict[str, Any]:
    return {"kind": kind, "help": help, "choices": choices}


@dataclass(frozen=True)
class Options:
    """What to interpolate to and how; validated when created."""

    factor: int | None = field(default=None, metadata=_about(
        "int", f"output rate = source rate x factor, with factor x as many frames (default {DEFAULT_FACTOR})"))
    fps_num: int | None = field(default=None, metadata=_about(
        "int", "any target rate instead of factor: numerator (e.g. 60000)"))
    fps_den: int | None = field(default=None, metadata=_about(
        "int", "denominator of the target rate (default 1, e.g. 1001)"))
    model: str | os.PathLike[str] | SuperSloMo | None = field(default=None, metadata=_about(
        "model", "a .safetensors model, an original SuperSloMo.ckpt, a shipped model's name (two-network) or a "
        "loaded model; default: the shipped model (or $VS_SUPERSLOMO_MODEL)"))
    device: str = field(default="auto", metadata=_about(
        "str", "auto (CUDA when present), cpu, cuda or cuda:N"))
    fp16: bool | None = field(default=None, metadata=_about(
        "bool", "half precision (CUDA only; default on CUDA)"))
    flow_scale: float = field(default=1.0, metadata=_about(
        "float", "estimate motion on frames downscaled by this factor (HD/4K speed and memory, very large motion)",
        FLOW_SCALES))
    sc: bool = field(default=True, metadata=_about(
        "bool", "detect scene cuts and never morph across them"))
    sc_threshold: float = field(default=DEFAULT_SC_THRESHOLD, metadata=_about(
        "float", "mean absolute difference (0-1) of downscaled frames above which a pair may be a cut; lower it "
        "if cuts morph, raise it if fast motion freezes"))
    threads: int | None = field(default=None, metadata=_about(
        "int", "CPU threads for each frame's network evaluation (default 1: frames are evaluated side by side, one per "
        "CPU, as VapourSynth's threads ask for them)"))
    dis_preset: DisPreset | None = field(default=None, metadata=_about(
        "str", "the DIS motion estimator's speed/quality preset for models with DIS flows (default medium; "
        "fast: ~5x quicker estimation, 0.1-0.5 dB lower)", DIS_PRESETS))
    timecodes: str | os.PathLike[str] | None = field(default=None, metadata=_about(
        "path", "a timecodes file (mkvmerge/bestsource format v1 or v2) giving every source frame's start time; "
        "without it a clip of fps 0 is timed by its frames' _DurationNum/_DurationDen"))
    dedup: bool = field(default=False, metadata=_about(
        "bool", "treat a run of near-duplicate frames (anime on 2s/3s, repeated capture frames) as one drawing "
        "held for the whole run, so motion stays smooth across it"))
    dedup_threshold: float = field(default=DEFAULT_DEDUP_THRESHOLD, metadata=_about(
        "float", "largest difference (0-1, frames downscaled 4x) at which a frame counts as a duplicate of the "
        "one before it; raise it for noisy sources, lower it if slow motion is merged"))
    dedup_max_run: int = field(default=DEFAULT_DEDUP_MAX_RUN, metadata=_about(
        "int", "most frames a drawing may be held; longer runs of equal frames are a still scene and stay still"))
    fallback: bool = field(default=True, metadata=_about(
        "bool", "where the forward and backward motion contradict each other over a region (motion not found, "
        "a missed cut), fade the output toward blending; the SloMoFallback prop says how much fell back"))
    quadratic: bool = field(default=True, metadata=_about(
        "bool", "let each pixel's path bend through the source frames before and after its pair (accelerating "
        "motion, hand-held cameras) where their motion is trustworthy; False keeps straight paths"))
    refine: bool = field(default=True, metadata=_about(
        "bool", "run the model's interpolation U-Net, which refines the time-t flows and weighs the two frames; "
        "False fuses with Super SloMo's flow approximation and time weights alone (the shipped U-Net's output "
        "is nearly constant, so the frames barely change; 1.2-2x the speed, most at factor 4 and on small frames)"))

    def __post_init__(self) -> None:
        self._check_rate()
        for f in fields(self):
            self._check_type(f)
            choices = f.metadata["choices"]
            value = getattr(self, f.name)
            if choices is not None and value is not None and value not in choices:
                raise OptionError(f"{f.name} must be one of {', '.join(str(c) for c in choices)}, got {value!r}")
        if not 0 < self.sc_threshold <= 1:
            raise OptionError(f"sc_threshold must be in (0, 1], got {self.sc_threshold!r}")
        if self.threads is not None and self.threads < 1:
            raise OptionError(f"threads must be at least 1, got {self.threads!r}")
        if not 0 < self.dedup_threshold < 1:
            raise OptionError(f"dedup_threshold must be in (0, 1), got {self.dedup_threshold!r}")
        if not 2 <= self.dedup_max_run <= 16:
            raise OptionError(f"dedup_max_run must be from 2 to 16, got {self.dedup_max_run!r}")

    def _check_type(self, f: Field[Any]) -> None:
        value, kind = getattr(self, f.name), f.metadata["kind"]
        if value is None and f.default is not None:
            raise OptionError(f"{f.name} cannot be None")
        if value is None or kind in ("model", "path"):
            return
        expected: tuple[type, ...] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}[kind]
        if not isinstance(value, expected) or (kind in ("int", "float") and isinstance(value, bool)):
            raise OptionError(f"{f.name} must be {'a number' if kind == 'float' else 'a ' + kind}, got {value!r}")

    def _check_rate(self) -> None:
        if self.fps_num is None and self.fps_den is None:
            f = self.factor
            if f is not None and (isinstance(f, bool) or not isinstance(f, int) or f < 1):
                raise OptionError(f"factor must be an integer of at least 1, got {f!r}")
            return
        if self.factor is not None:
            raise OptionError("give either factor or fps_num/fps_den, not both")
        if self.fps_num is None:
            raise OptionError("fps_den needs fps_num")
        for name, v in (("fps_num", self.fps_num), ("fps_den", self.fps_den)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise OptionError(f"{name} must be a positive integer, got {v!r}")

    @property
    def has_rate(self) -> bool:
        """Whether a target rate was given (rather than a factor)."""
        return self.fps_num is not None

    def output_fps(self, source_fps: Fraction) -> Fraction:
        """The output's frame rate for a source of ``source_fps``."""
        if self.fps_num is None:
            return source_fps * (self.factor or DEFAULT_FACTOR)
        return Fraction(self.fps_num, self.fps_den or 1)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Options:
        """Options from keyword arguments, refusing names that are not options."""
        unknown = sorted(set(kwargs) - set(names()))
        if unknown:
            raise OptionError(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
        return cls(**kwargs)


def from_plugin_map(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments from a VapourSynth argument map, where a bool is an int and a string is bytes."""
    converted = dict(kwargs)
    for f in fields(Options):
        value = converted.get(f.name)
        if isinstance(value, bytes) and f.metadata["kind"] in ("str", "model", "path"):
            converted[f.name] = value.decode()
        elif f.metadata["kind"] == "bool" and isinstance(value, int):
            converted[f.name] = bool(value)
    return converted


def names() -> list[str]:
    return [f.name for f in fields(Options)]


def _field(name: str) -> Field[Any]:
    return next(f for f in fields(Options) if f.name == name)


def default(name: str) -> Any:
    value = _field(name).default
    return None if value is MISSING else value


def choices(name: str) -> tuple[Any, ...] | None:
    """The values an option may take, or None when it is not a choice."""
    return _field(name).metadata["choices"]


def help_text(name: str) -> str:
    return str(_field(name).metadata["help"])


def plugin_signature() -> str:
    """The argument list ``core.slomo.Interpolate`` must register (after ``clip:vnode;``)."""
    return "".join(f"{f.name}:{_PLUGIN_TYPES[f.metadata['kind']]}:opt;" for f in fields(Options))


def describe() -> str:
    """One line per option, for docstrings and help texts."""
    return "\n".join(f"    {f.name}: {f.metadata['help']}" for f in fields(Options))
