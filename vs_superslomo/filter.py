"""The VapourSynth glue: validation, time mapping, scene cuts, colour conversion, props.

The graph, for an output of M frames:
  first  = source frame i of each slot (DeleteFrames/DuplicateFrames: static, no per-frame nodes)
  second = source frame i + 1 of each slot
  interp = RGBS(first), RGBS(second) -> engine (ModifyFrame) -> back to the source format
  output = FrameEval choosing per frame: first (source time), the nearer source frame (scene cut),
           or interp; then the output's constant duration props.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs

from .checkpoint import ModelFileError, default_model_path, load_model
from .engine import FLOW_SCALES, Interpolator, resolve_device
from .heap import HeapTrimmer
from .network import DIS_PRESETS, SuperSloMo
from .timing import Timing

core = vs.core

DEFAULT_SC_THRESHOLD = 0.12
# Scene cuts are judged on frames downscaled to this width: the layout of a shot survives, so
# a cut changes it a lot, while motion within a shot moves content by a small fraction of it.
SC_ANALYSIS_WIDTH = 48
# A cut's difference must also exceed this multiple of its neighbouring pairs' differences.
SC_NEIGHBOUR_RATIO = 1.6
TIME_PROP = "SloMoTime"
# The graph maps output frames to source frames with a static list of duplicates, built when the
# filter is created (measured: 2.7 s for 800,000 output frames), so longer outputs are refused
# rather than left to build for minutes.
MAX_OUTPUT_FRAMES = 2**24


class SloMoError(vs.Error):
    """A user error in the filter's arguments or input clip."""

    def __init__(self, message: str) -> None:
        super().__init__(f"slomo: {message}")


@dataclass(frozen=True)
class ColorSpec:
    """How to read the clip's values as RGB; from its first frame's props, with defaults."""

    matrix: int
    transfer: int
    primaries: int
    range: int
    chromaloc: int


def _default_color(clip: vs.VideoNode, props: vs.FrameProps) -> ColorSpec:
    """Missing or unspecified colour props get the usual defaults (BT.709 for HD, BT.601 for SD)."""
    fmt = clip.format
    is_rgb = fmt.color_family == vs.RGB
    hd = clip.width > 1024 or clip.height > 576

    def prop(name: str, unspecified: tuple[int, ...], default: int) -> int:
        value = props.get(name)
        return default if not isinstance(value, int) or value in unspecified else value

    return ColorSpec(
        matrix=0 if is_rgb else prop("_Matrix", (2,), 1 if hd else 6),
        transfer=prop("_Transfer", (0, 2, 3), 1),
        primaries=prop("_Primaries", (0, 2, 3), 1 if hd else 6),
        # R81 names the range prop _Range; earlier API4 cores call it _ColorRange.
        range=prop("_Range" if "_Range" in props else "_ColorRange", (), 0 if is_rgb else 1),
        chromaloc=prop("_ChromaLocation", (), 0),
    )


def _to_rgbs(clip: vs.VideoNode, color: ColorSpec) -> vs.VideoNode:
    if clip.format.color_family == vs.GRAY:
        grey = core.resize.Point(clip, format=vs.GRAYS, range_in=color.range, range=0)
        return core.std.ShufflePlanes([grey, grey, grey], [0, 0, 0], vs.RGB)
    return core.resize.Bicubic(
        clip, format=vs.RGBS, matrix_in=color.matrix, transfer_in=color.transfer, transfer=color.transfer,
        primaries_in=color.primaries, primaries=color.primaries, range_in=color.range, range=0,
        chromaloc_in=color.chromaloc,
    )


def _from_rgbs(rgb: vs.VideoNode, fmt: vs.VideoFormat, color: ColorSpec) -> vs.VideoNode:
    if fmt.color_family == vs.GRAY:
        grey = core.std.ShufflePlanes(rgb, 1, vs.GRAY)
        return core.resize.Point(grey, format=fmt.id, range_in=0, range=color.range)
    return core.resize.Bicubic(
        rgb, format=fmt.id, matrix=color.matrix if fmt.color_family == vs.YUV else None,
        transfer_in=color.transfer, transfer=color.transfer, primaries_in=color.primaries,
        primaries=color.primaries, range_in=0, range=color.range,
        chromaloc=color.chromaloc if fmt.color_family == vs.YUV else None,
    )


def is_scene_cut(diff: float, before: float, after: float, threshold: float) -> bool:
    """A pair is a cut when its difference is above the threshold and stands out from its neighbours.

    Fast motion raises the difference of every pair in a shot alike; a cut raises only its own.
    """
    return diff > threshold and diff > SC_NEIGHBOUR_RATIO * max(before, after)


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


@functools.lru_cache(maxsize=2)
def _cached_model(path: str, mtime_ns: int) -> SuperSloMo:
    return load_model(path)


def _resolve_model(model: str | os.PathLike[str] | SuperSloMo | None) -> SuperSloMo:
    if isinstance(model, SuperSloMo):
        return model
    path = default_model_path() if model is None else Path(os.fsdecode(model))
    try:
        if model is None and not path.exists():
            return load_model()  # raises the "no default model" error
        if not path.exists():
            raise ModelFileError(path, "no such file")
        return _cached_model(str(path.resolve()), path.stat().st_mtime_ns)
    except ModelFileError as e:
        raise SloMoError(str(e)) from None


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


def _output_fps(clip: vs.VideoNode, factor: int | None, fps_num: int | None, fps_den: int | None) -> Fraction:
    source = Fraction(clip.fps_num, clip.fps_den)
    if fps_num is None and fps_den is None:
        f = 2 if factor is None else factor
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise SloMoError(f"factor must be an integer of at least 1, got {f!r}")
        return source * f
    if factor is not None:
        raise SloMoError("give either factor or fps_num/fps_den, not both")
    if fps_num is None:
        raise SloMoError("fps_den needs fps_num")
    den = 1 if fps_den is None else fps_den
    for name, v in (("fps_num", fps_num), ("fps_den", den)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SloMoError(f"{name} must be a positive integer, got {v!r}")
    return Fraction(fps_num, den)


def interpolate(
    clip: vs.VideoNode,
    factor: int | None = None,
    fps_num: int | None = None,
    fps_den: int | None = None,
    model: str | os.PathLike[str] | SuperSloMo | None = None,
    device: str = "auto",
    fp16: bool | None = None,
    flow_scale: float = 1.0,
    sc: bool = True,
    sc_threshold: float = DEFAULT_SC_THRESHOLD,
    threads: int | None = None,
    dis_preset: str | None = None,
) -> vs.VideoNode:
    """Interpolate frames with Super SloMo.

    Args:
        clip: constant-format, constant-size, constant-rate clip (YUV, RGB or GRAY; 8-16 bit integer
            or 16/32-bit float) with at least 2 frames.
        factor: output frame rate = source rate * factor, with factor times as many frames
            (default 2). Frames at source times are the source frames, unchanged.
        fps_num, fps_den: any target rate instead of ``factor`` (e.g. 60000/1001); exact rational timing.
        model: a ``.safetensors`` model, an original ``SuperSloMo.ckpt``, a loaded ``SuperSloMo``, or
            None for the shipped default (or ``$VS_SUPERSLOMO_MODEL``).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
        fp16: half precision on CUDA (default on CUDA, never on CPU).
        flow_scale: 1, 0.5 or 0.25: estimate motion at this scale (faster, lower memory for HD/4K,
            and better for very large motion).
        sc: detect scene cuts and never morph across them (the nearer source frame is repeated).
            ``_SceneChangeNext``/``_SceneChangePrev`` props are always honoured.
        sc_threshold: mean absolute difference (0-1, on downscaled green/luma) between consecutive
            frames above which a pair counts as a cut. Lower it if cuts morph; raise it if fast
            motion gets frozen.
        threads: CPU threads for the network (default: every CPU the process may use). Frames do not
            depend on ``core.num_threads``; a different ``threads`` may change a rare pixel by one step.
        dis_preset: "ultrafast", "fast" or "medium" (default): the motion estimator's speed/quality
            preset, for models with DIS flows (the shipped one). "fast" takes about a fifth of
            "medium"'s estimation time and costs 0.1-0.5 dB.

    Every interpolated frame carries the props of the nearer source frame plus ``SloMoTime``
    (the timestep in (0, 1)); source-time frames carry their own props.
    """
    clip = _check_clip(clip)
    out_fps = _output_fps(clip, factor, fps_num, fps_den)
    if flow_scale not in FLOW_SCALES:
        raise SloMoError(f"flow_scale must be one of {', '.join(str(s) for s in FLOW_SCALES)}, got {flow_scale!r}")
    if not 0 < sc_threshold <= 1:
        raise SloMoError(f"sc_threshold must be in (0, 1], got {sc_threshold!r}")
    if threads is not None and threads < 1:
        raise SloMoError(f"threads must be at least 1, got {threads!r}")
    if dis_preset is not None and dis_preset not in DIS_PRESETS:
        raise SloMoError(f"dis_preset must be one of {', '.join(DIS_PRESETS)}, got {dis_preset!r}")
    try:
        dev = resolve_device(device)
    except ValueError as e:
        raise SloMoError(str(e)) from None
    if fp16 and dev.type != "cuda":
        raise SloMoError("fp16 needs a CUDA device")
    timing = Timing(clip.num_frames, Fraction(clip.fps_num, clip.fps_den), out_fps)
    if timing.output_frames > MAX_OUTPUT_FRAMES:
        raise SloMoError(f"the output would have {timing.output_frames:,} frames; at most {MAX_OUTPUT_FRAMES:,} "
                         "are supported (77 hours at 60 fps)")
    net = _resolve_model(model)
    try:  # what depends on the model (dis_preset needs DIS flows) is checked by the engine
        engine = Interpolator(net, device=dev, fp16=fp16, flow_scale=flow_scale,
                              threads=threads, dis_preset=dis_preset)
    except ValueError as e:
        raise SloMoError(str(e)) from None
    return _build_graph(clip, timing, engine, sc, float(sc_threshold))


def _build_graph(clip: vs.VideoNode, timing: Timing, engine: Interpolator, sc: bool,
                 sc_threshold: float) -> vs.VideoNode:
    with clip.get_frame(0) as first_frame:
        color = _default_color(clip, first_frame.props)
    aligned = _Alignment.of(timing)
    last = clip.num_frames - 1
    second_source = clip[1:] + clip[last]
    first = aligned(clip)
    second = aligned(second_source)

    rgb = _to_rgbs(clip, color)
    rgb_first = aligned(rgb)
    rgb_second = aligned(rgb[1:] + rgb[last])
    blank = core.std.BlankClip(rgb_first, keep=True)

    transfer = None
    if engine.device.type == "cuda":
        from .cuda_io import CudaPlaneTransfer

        transfer = CudaPlaneTransfer(engine.device)
    trimmer = HeapTrimmer()

    def synthesize(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        slot = timing.slot(n)
        if transfer is None:
            a = torch.from_numpy(np.stack([np.asarray(f[0][p]) for p in range(3)]))[None]
            b = torch.from_numpy(np.stack([np.asarray(f[1][p]) for p in range(3)]))[None]
            frame = engine.interpolate_tensors(a, b, [float(slot.t)], key=slot.index)[0].numpy()
        else:
            a = transfer.upload([np.asarray(f[0][p]) for p in range(3)])
            b = transfer.upload([np.asarray(f[1][p]) for p in range(3)])
            result = engine.interpolate_tensors(a, b, [float(slot.t)], key=slot.index, to_cpu=False)
            frame = transfer.download(result[0])
        out = f[0].copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frame[p])
        trimmer.tick()
        return out

    interp_rgb = core.std.ModifyFrame(blank, [rgb_first, rgb_second], synthesize)
    interp = _from_rgbs(interp_rgb, clip.format, color)

    def with_props(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        t = timing.slot(n).t
        out = f[0].copy()
        props = out.props
        nearer = f[1] if t < Fraction(1, 2) else f[2]
        props.clear()
        props.update(nearer.props)
        props[TIME_PROP] = float(t)
        return out

    interp = core.std.ModifyFrame(interp, [interp, first, second], with_props)

    prop_src = [first, second]
    if sc:
        small_w = min(clip.width, SC_ANALYSIS_WIDTH)
        small_h = max(1, round(clip.height * small_w / clip.width))
        green = core.resize.Bilinear(core.std.ShufflePlanes(rgb, 1, vs.GRAY), small_w, small_h)
        # stats[i] measures pair (i, i + 1); its neighbours are the pairs before and after it.
        stats = core.std.PlaneStats(green, green[1:] + green[last])
        before = stats[0] + stats[:last] if last > 0 else stats
        after = stats[1:] + stats[last] if last > 0 else stats
        prop_src += [aligned(c) for c in (stats, before, after)]

    def select(n: int, f: list[vs.VideoFrame]) -> vs.VideoNode:
        t = timing.slot(n).t
        if t == 0:
            return first
        cut = bool(f[0].props.get("_SceneChangeNext", 0)) or bool(f[1].props.get("_SceneChangePrev", 0))
        if sc and not cut:
            diff, before, after = (float(x.props.get("PlaneStatsDiff", 0.0)) for x in f[2:5])
            cut = is_scene_cut(diff, before, after, sc_threshold)
        if cut:
            return first if t < Fraction(1, 2) else second
        return interp

    out = core.std.FrameEval(first, select, prop_src=prop_src, clip_src=[first, second, interp])
    fps = timing.output_fps
    return core.std.SetFrameProps(out, _DurationNum=fps.denominator, _DurationDen=fps.numerator)


