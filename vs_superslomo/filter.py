"""The VapourSynth glue: checks, the time map's use, scene cuts, colour conversion, props.

The graph, for an output of M frames:
  first  = source frame i of each slot (DeleteFrames/DuplicateFrames: static, no per-frame nodes)
  second = source frame i + 1 of each slot
  interp = RGBS(first), RGBS(second) -> engine (ModifyFrame) -> back to the source format
  output = FrameEval choosing per frame: first (source time), the nearer source frame (scene cut),
           or interp; then the output's constant duration props.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from . import options as option_info
from .checkpoint import ModelFileError, resolve_model
from .colour import ColorSpec, from_rgbs, to_rgbs
from .engine import Interpolator, resolve_device
from .heap import HeapTrimmer
from .options import OptionError, Options
from .scene_cuts import detected_cut, marked_cut, pair_differences
from .timing import Timing

core = vs.core

TIME_PROP = "SloMoTime"
# The graph maps output frames to source frames with a static list of duplicates, built when the
# filter is created (measured: 2.7 s for 800,000 output frames), so longer outputs are refused
# rather than left to build for minutes.
MAX_OUTPUT_FRAMES = 2**24


class SloMoError(vs.Error):
    """A user error in the filter's arguments or input clip; ``reason`` is the message without prefix."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"slomo: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class _Alignment:
    """Turns a clip of the source's length into one whose frame n is the frame output n starts from."""

    unused: list[int]
    dups: list[int]
    fps: Fraction

    @classmethod
    def of(cls, timing: Timing) -> _Alignment:
        counts = np.asarray(timing.outputs_per_source(), dtype=np.int64)
        kept = np.flatnonzero(counts)
        # DuplicateFrames takes indices after DeleteFrames: kept frame k sits at position k.
        dups = np.repeat(np.arange(len(kept)), counts[kept] - 1)
        return cls(np.flatnonzero(counts == 0).tolist(), dups.tolist(), timing.output_fps)

    def __call__(self, clip: vs.VideoNode) -> vs.VideoNode:
        out = core.std.DeleteFrames(clip, self.unused) if self.unused else clip
        if self.dups:
            out = core.std.DuplicateFrames(out, self.dups)
        return core.std.AssumeFPS(out, fpsnum=self.fps.numerator, fpsden=self.fps.denominator)


def _check_clip(clip: object) -> vs.VideoNode:
    if not isinstance(clip, vs.VideoNode):
        raise SloMoError(f"clip must be a video clip, got {type(clip).__name__}")
    if clip.format is None or clip.format.id == vs.NONE:
        raise SloMoError("clip has a variable format; convert it to one format first (e.g. resize.Bicubic)")
    if clip.width == 0 or clip.height == 0:
        raise SloMoError("clip has a variable frame size; resize it to one size first")
    fmt = clip.format
    if fmt.color_family not in (vs.YUV, vs.RGB, vs.GRAY):
        raise SloMoError(f"unsupported colour family in {fmt.name}")
    if fmt.sample_type == vs.INTEGER and not 8 <= fmt.bits_per_sample <= 16:
        raise SloMoError(f"unsupported bit depth {fmt.bits_per_sample} in {fmt.name} (8 to 16 bit integer)")
    if clip.num_frames < 2:
        raise SloMoError(f"clip needs at least 2 frames to interpolate, it has {clip.num_frames}")
    if clip.fps_num == 0 or clip.fps_den == 0:
        raise SloMoError(
            "clip has a variable frame rate (fps 0); give it a constant rate first, "
            "e.g. clip = core.std.AssumeFPS(clip, fpsnum=24000, fpsden=1001)"
        )
    return clip



def interpolate(clip: vs.VideoNode, **options: Any) -> vs.VideoNode:
    """Interpolate frames with Super SloMo.

    ``clip``: constant-format, constant-size, constant-rate clip (YUV, RGB or GRAY; 8-16 bit integer or
    16/32-bit float) with at least 2 frames. Options (``vs_superslomo.options.Options``):

{options}

    Frames at source times are the source frames, unchanged. Every interpolated frame carries the props
    of the nearer source frame plus ``SloMoTime`` (the timestep in (0, 1)).
    """
    clip = _check_clip(clip)
    try:
        opts = Options.from_kwargs(options)
    except OptionError as e:
        raise SloMoError(str(e)) from None
    _check_device(opts)
    timing = Timing(clip.num_frames, Fraction(clip.fps_num, clip.fps_den),
                    opts.output_fps(Fraction(clip.fps_num, clip.fps_den)))
    if timing.output_frames > MAX_OUTPUT_FRAMES:
        raise SloMoError(f"the output would have {timing.output_frames:,} frames; at most {MAX_OUTPUT_FRAMES:,} "
                         "are supported (77 hours at 60 fps)")
    try:
        net = resolve_model(opts.model)
        # what depends on the model (dis_preset needs DIS flows) is checked by the engine
        engine = Interpolator(net, opts)
    except (ModelFileError, ValueError) as e:
        raise SloMoError(str(e)) from None
    return _build_graph(clip, timing, engine, opts)


interpolate.__doc__ = (interpolate.__doc__ or "").replace("{options}", option_info.describe())


def _check_device(opts: Options) -> None:
    try:
        dev = resolve_device(opts.device)
    except ValueError as e:
        raise SloMoError(str(e)) from None
    if opts.fp16 and dev.type != "cuda":
        raise SloMoError("fp16 needs a CUDA device")


class _FrameInterpolation:
    """The ModifyFrame callback: one interpolated float RGB frame from the two source frames of its slot."""

    def __init__(self, timing: Timing, engine: Interpolator) -> None:
        self.timing = timing
        self.engine = engine
        self.trimmer = HeapTrimmer()
        self.transfer = None
        if engine.device.type == "cuda":
            from .cuda_io import CudaPlaneTransfer

            self.transfer = CudaPlaneTransfer(engine.device)

    def __call__(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        slot = self.timing.slot(n)
        planes = [[np.asarray(frame[p]) for p in range(3)] for frame in f[:2]]
        if self.transfer is None:
            a, b = (torch.from_numpy(np.stack(pl))[None] for pl in planes)
            frame = self.engine.interpolate_tensors(a, b, [float(slot.t)], key=slot.index)[0].numpy()
        else:
            a, b = (self.transfer.upload(pl) for pl in planes)
            result = self.engine.interpolate_tensors(a, b, [float(slot.t)], key=slot.index, to_cpu=False)
            frame = self.transfer.download(result[0])
        out = f[0].copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frame[p])
        self.trimmer.tick()
        return out


@dataclass(frozen=True)
class _PairClips:
    """Clips of the output's length: frame n of ``first``/``second`` is the pair output n lies between."""

    first: vs.VideoNode
    second: vs.VideoNode

    @classmethod
    def of(cls, clip: vs.VideoNode, aligned: _Alignment) -> _PairClips:
        last = clip.num_frames - 1
        return cls(aligned(clip), aligned(clip[1:] + clip[last]))


def _interpolated(clip: vs.VideoNode, rgb: vs.VideoNode, color: ColorSpec, aligned: _Alignment,
                  timing: Timing, engine: Interpolator) -> vs.VideoNode:
    """Every output slot interpolated, in the clip's format, with the nearer source frame's props."""
    rgb_pairs = _PairClips.of(rgb, aligned)
    blank = core.std.BlankClip(rgb_pairs.first, keep=True)
    interp_rgb = core.std.ModifyFrame(blank, [rgb_pairs.first, rgb_pairs.second], _FrameInterpolation(timing, engine))
    interp = from_rgbs(interp_rgb, clip.format, color)
    pairs = _PairClips.of(clip, aligned)

    def with_props(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        t = timing.slot(n).t
        out = f[0].copy()
        props = out.props
        nearer = f[1] if t < Fraction(1, 2) else f[2]
        props.clear()
        props.update(nearer.props)
        props[TIME_PROP] = float(t)
        return out

    return core.std.ModifyFrame(interp, [interp, pairs.first, pairs.second], with_props)


def _build_graph(clip: vs.VideoNode, timing: Timing, engine: Interpolator, opts: Options) -> vs.VideoNode:
    with clip.get_frame(0) as first_frame:
        color = ColorSpec.of(clip, first_frame.props)
    aligned = _Alignment.of(timing)
    pairs = _PairClips.of(clip, aligned)
    rgb = to_rgbs(clip, color)
    interp = _interpolated(clip, rgb, color, aligned, timing, engine)
    prop_src = [pairs.first, pairs.second]
    if opts.sc:
        prop_src += [aligned(c) for c in pair_differences(rgb)]
    threshold = float(opts.sc_threshold)

    def select(n: int, f: list[vs.VideoFrame]) -> vs.VideoNode:
        t = timing.slot(n).t
        if t == 0:
            return pairs.first
        cut = marked_cut(f[0], f[1]) or (opts.sc and detected_cut(f[2:5], threshold))
        if cut:
            return pairs.first if t < Fraction(1, 2) else pairs.second
        return interp

    out = core.std.FrameEval(pairs.first, select, prop_src=prop_src, clip_src=[pairs.first, pairs.second, interp])
    fps = timing.output_fps
    return core.std.SetFrameProps(out, _DurationNum=fps.denominator, _DurationDen=fps.numerator)
