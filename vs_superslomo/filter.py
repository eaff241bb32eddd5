"""The VapourSynth glue: checks, the time map's use, scene cuts, colour conversion, props.

The graph, for an output of M frames:
  first  = source frame i of each slot (DeleteFrames/DuplicateFrames: static, no per-frame nodes)
  second = source frame i + 1 of each slot
  interp = RGB(first), RGB(second) (16-bit, or float for float sources) -> engine (ModifyFrame) -> back to the
           source format
  output = FrameEval choosing per frame: first (source time), the nearer source frame (scene cut),
           or interp; then the output's constant duration props.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import vapoursynth as vs

from . import options as option_info
from .checkpoint import ModelFileError, resolve_model
from .colour import ColorSpec, from_rgb, to_rgb
from .dedup import DUPLICATE_PROP, drawing_pair, duplicate_metric
from .engine import Frame, Interpolator, Neighbours, PairKey, load_frame, resolve_device
from .heap import HeapTrimmer, trim_cadence
from .options import OptionError, Options
from .scene_cuts import detected_cut, marked_cut, pair_differences
from .timing import TimecodesError, Timing, VariableTiming, read_timecodes

core = vs.core

TIME_PROP = "SloMoTime"
FALLBACK_PROP = "SloMoFallback"  # share (0-1) of an interpolated frame that fell back to blending
PAIR_PROP = "SloMoPair"  # with dedup: the source frames (first frames of two drawings) interpolated between
# The graph maps output frames to source frames with a static list of duplicates, built when the
# filter is created (measured: 2.7 s for 800,000 output frames), so longer outputs are refused
# rather than left to build for minutes.
MAX_OUTPUT_FRAMES = 2**24
# Source frames one interpolated frame reads: its pair, the frames before and after it (quadratic motion) and
# the one after those (the pair read ahead).
NEIGHBOUR_WINDOW = 5


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
        out = _uncached(core.std.DeleteFrames(clip, self.unused)) if self.unused else clip
        if self.dups:
            out = _uncached(core.std.DuplicateFrames(out, self.dups))
        return _uncached(core.std.AssumeFPS(out, fpsnum=self.fps.numerator, fpsden=self.fps.denominator))


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
    return clip



def interpolate(clip: vs.VideoNode, **options: Any) -> vs.VideoNode:
    """Interpolate frames with Super SloMo.

    ``clip``: constant-format, constant-size, constant-rate clip (YUV, RGB or GRAY; 8-16 bit integer or
    16/32-bit float) with at least 2 frames. Options (``vs_superslomo.options.Options``):

{options}

    Frames at source times are the source frames, unchanged. Every interpolated frame carries the props
    of the nearer source frame plus ``SloMoTime`` (the timestep in (0, 1)) and ``SloMoFallback`` (the share of
    the frame that fell back to blending, 0-1).
    """
    clip = _check_clip(clip)
    try:
        opts = Options.from_kwargs(options)
    except OptionError as e:
        raise SloMoError(str(e)) from None
    _check_device(opts)
    timing = _timing(clip, opts)
    if timing.output_frames > MAX_OUTPUT_FRAMES:
        raise SloMoError(f"the output would have {timing.output_frames:,} frames; at most {MAX_OUTPUT_FRAMES:,} "
                         "are supported (77 hours at 60 fps)")
    try:
        net = resolve_model(opts.model)
        # what depends on the model (dis_preset needs DIS flows) is checked by the engine
        engine = Interpolator(net, opts)
    except (ModelFileError, ValueError) as e:
        raise SloMoError(str(e)) from None
    # The script's end (vspipe done, an editor reloading it) stops the engine's background work first.
    vs.register_on_destroy(engine.read_ahead.close)
    if opts.dedup:
        return _build_held_graph(clip, timing, engine, opts)
    return _build_graph(clip, timing, engine, opts)


interpolate.__doc__ = (interpolate.__doc__ or "").replace("{options}", option_info.describe())


def _timing(clip: vs.VideoNode, opts: Options) -> Timing:
    """The time map: constant rate, or each frame's own start time (a timecodes file, or the frames'
    durations when the clip's rate is 0)."""
    variable = clip.fps_num == 0 or opts.timecodes is not None
    if variable and not opts.has_rate:
        raise SloMoError("a clip with a variable frame rate (fps 0, or timecodes) needs a target rate: give "
                         "fps_num and fps_den instead of factor, e.g. fps_num=60000, fps_den=1001")
    if not variable:
        return Timing(clip.num_frames, Fraction(clip.fps_num, clip.fps_den),
                      opts.output_fps(Fraction(clip.fps_num, clip.fps_den)))
    out_fps = opts.output_fps(Fraction(0))
    try:
        if opts.timecodes is not None:
            last = _durations(clip[-1])[0] if clip.fps_num == 0 else Fraction(clip.fps_den, clip.fps_num)
            starts = read_timecodes(Path(os.fsdecode(opts.timecodes)), clip.num_frames, last)
            return VariableTiming.from_starts(starts, out_fps)
        return VariableTiming.from_durations(_durations(clip), out_fps)
    except TimecodesError as e:
        raise SloMoError(str(e)) from None


def _durations(clip: vs.VideoNode) -> list[Fraction]:
    """Every frame's _DurationNum/_DurationDen (this decodes the clip once, when the filter is created)."""
    durations = []
    for n, frame in enumerate(clip.frames(close=True)):
        num, den = frame.props.get("_DurationNum"), frame.props.get("_DurationDen")
        if not isinstance(num, int) or not isinstance(den, int) or num <= 0 or den <= 0:
            raise SloMoError(f"frame {n} of the variable-frame-rate clip has no _DurationNum/_DurationDen; "
                             "give timecodes= or a constant rate (std.AssumeFPS)")
        durations.append(Fraction(num, den))
    return durations


def _check_device(opts: Options) -> None:
    try:
        dev = resolve_device(opts.device)
    except ValueError as e:
        raise SloMoError(str(e)) from None
    if opts.fp16 and dev.type != "cuda":
        raise SloMoError("fp16 needs a CUDA device")


@dataclass(frozen=True)
class _Around:
    """The flow-cache keys of the pairs before and after a pair and of the one after that (None past the clip's
    ends), and how many of the pair's intervals away the frames they add are (a variable frame rate makes
    them differ from 1)."""

    before_key: Hashable | None
    after_key: Hashable | None
    ahead_key: Hashable | None = None
    gap_before: float = 1.0
    gap_after: float = 1.0


class _FrameInterpolation:
    """The ModifyFrame callback: one interpolated float RGB frame from the two source frames of its slot.

    ``pair_at(n)`` gives the flow-cache key of output n's source pair and its timestep. With ``around``, the
    source frames after and before the pair and the one after that come as third, fourth and fifth frames:
    the motion may bend through the nearer two (``Neighbours``), and a later pair's flows are started in the
    background (``Interpolator.prepare_ahead``): the next pair's, or with quadratic motion, which needs the
    next pair's flows at once, the pair after it.
    """

    def __init__(self, pair_at: Callable[[int], tuple[Hashable, Fraction]], engine: Interpolator,
                 around: Callable[[Hashable], _Around] | None = None) -> None:
        self.pair_at = pair_at
        self.around = around
        self.engine = engine
        self.trimmer: HeapTrimmer | None = None
        self.transfer = None
        if engine.device.type == "cuda":
            try:
                from .cuda_io import CudaPlaneTransfer

                self.transfer = CudaPlaneTransfer(engine.device)
            except ImportError as e:  # CuPy missing or built for another CUDA than torch's: the message says which
                raise SloMoError(str(e)) from None

    def _tensor(self, frame: vs.VideoFrame) -> torch.Tensor:
        planes = [np.asarray(frame[p]) for p in range(3)]
        if self.transfer is None:
            return torch.from_numpy(np.stack(planes))[None]
        return self.transfer.upload(planes)

    def _frame(self, frame: vs.VideoFrame) -> Callable[[], torch.Tensor]:
        """The frame as the engine takes it: converted once, and only if a pair's state needs it (most pairs'
        states are cached, their neighbours' nearly always)."""
        return functools.cache(lambda: self._tensor(frame))

    def _neighbours(self, key: Hashable, b: Frame, f: list[vs.VideoFrame]) -> Neighbours | None:
        if self.around is None:
            return None
        around = self.around(key)
        after = self._frame(f[2]) if around.after_key is not None and not marked_cut(f[1], f[2]) else None
        if after is not None and self.transfer is None:
            self._read_ahead(around, b, after, f)
        if not self.engine.quadratic:
            return None
        before = self._frame(f[3]) if around.before_key is not None and not marked_cut(f[3], f[0]) else None
        return Neighbours(before, after, around.before_key, around.after_key, around.gap_before, around.gap_after)

    def _read_ahead(self, around: _Around, b: Frame, after: Frame, f: list[vs.VideoFrame]) -> None:
        if not self.engine.quadratic:
            key, first, second = around.after_key, b, after
        elif around.ahead_key is not None and not marked_cut(f[2], f[4]):
            key, first, second = around.ahead_key, after, self._frame(f[4])
        else:
            return
        if key not in self.engine.flow_cache:
            # Converted here, not in the background: a task still queued when vspipe stops early (--end) must
            # not hold VapourSynth frames while the core shuts down (suspected, not shown, in a vspipe run that
            # failed at exit now and then).
            self.engine.prepare_ahead(load_frame(first), load_frame(second), key)

    def __call__(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        key, t = self.pair_at(n)
        a, b = self._frame(f[0]), self._frame(f[1])
        neighbours = self._neighbours(key, b, f)
        if self.transfer is None:
            rendered = self.engine.render(a, b, [float(t)], key=key, neighbours=neighbours)
            frame = rendered.frames[0].numpy()
        else:
            rendered = self.engine.render(a, b, [float(t)], key=key, to_cpu=False, neighbours=neighbours)
            frame = self.transfer.download(rendered.frames[0])
        out = f[0].copy()
        _write_planes(out, frame)
        out.props[FALLBACK_PROP] = rendered.fallback
        if self.trimmer is None:
            self.trimmer = HeapTrimmer(trim_cadence(out.width, out.height))
        self.trimmer.tick()
        return out


def _write_planes(out: vs.VideoFrame, frame: np.ndarray) -> None:
    """Float RGB in [0, 1] (3, H, W) into a float or 16-bit RGB frame; ``frame`` is scratch (scaled in place)."""
    for p in range(3):
        plane = np.asarray(out[p])
        if plane.dtype == np.uint16:
            scaled = np.multiply(frame[p], np.float32(65535), out=frame[p])
            np.copyto(plane, np.rint(scaled, out=scaled), casting="unsafe")
        else:
            np.copyto(plane, frame[p])


@dataclass(frozen=True)
class _PairClips:
    """Clips of the output's length: frame n of ``first``/``second`` is the pair output n lies between."""

    first: vs.VideoNode
    second: vs.VideoNode

    @classmethod
    def of(cls, clip: vs.VideoNode, aligned: _Alignment) -> _PairClips:
        return cls(aligned(clip), aligned(_shifted(clip, 1)))


def _interpolated(clip: vs.VideoNode, rgb: vs.VideoNode, color: ColorSpec, aligned: _Alignment,
                  timing: Timing, engine: Interpolator) -> vs.VideoNode:
    """Every output slot interpolated, in the clip's format, with the nearer source frame's props."""
    rgb_pairs = _PairClips.of(rgb, aligned)
    blank = core.std.BlankClip(rgb_pairs.first, keep=True)

    def pair_at(n: int) -> tuple[Hashable, Fraction]:
        slot = timing.slot(n)
        return PairKey(slot.index, slot.index + 1), slot.t

    last_pair = clip.num_frames - 2

    def around(key: Hashable) -> _Around:
        assert isinstance(key, PairKey) and isinstance(key.first, int)
        k = key.first
        span = timing.start(k + 1) - timing.start(k)
        before = PairKey(k - 1, k) if k > 0 else None
        after = PairKey(k + 1, k + 2) if k < last_pair else None
        ahead = PairKey(k + 2, k + 3) if k + 1 < last_pair else None
        return _Around(before, after, ahead,
                       1.0 if before is None else float((timing.start(k) - timing.start(k - 1)) / span),
                       1.0 if after is None else float((timing.start(k + 2) - timing.start(k + 1)) / span))

    neighbours = [aligned(_shifted(rgb, 2)), aligned(_shifted(rgb, -1)), aligned(_shifted(rgb, 3))]
    interp_rgb = core.std.ModifyFrame(blank, [rgb_pairs.first, rgb_pairs.second, *neighbours],
                                      _FrameInterpolation(pair_at, engine, around))
    interp = from_rgb(interp_rgb, clip.format, color)
    pairs = _PairClips.of(clip, aligned)

    def with_props(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        slot = timing.slot(n)
        return _with_source_props(f[0], f[1], f[2], slot.t, timing.time(n) - timing.start(slot.index))

    return core.std.ModifyFrame(interp, [interp, pairs.first, pairs.second], with_props)


def _with_source_props(frame: vs.VideoFrame, first: vs.VideoFrame, second: vs.VideoFrame, t: Fraction,
                       after_first: Fraction) -> vs.VideoFrame:
    """The interpolated frame with the nearer source frame's props, its timestep, and its own time."""
    out = frame.copy()
    props = out.props
    fallback = props.get(FALLBACK_PROP, 0.0)
    props.clear()
    props.update((first if t < Fraction(1, 2) else second).props)
    props[TIME_PROP] = float(t)
    props[FALLBACK_PROP] = fallback
    absolute = first.props.get("_AbsoluteTime")
    if isinstance(absolute, float | int):
        props["_AbsoluteTime"] = float(absolute + after_first)
    return out


def _colour_of(clip: vs.VideoNode) -> ColorSpec:
    with clip.get_frame(0) as first_frame:
        return ColorSpec.of(clip, first_frame.props)


def _with_output_durations(out: vs.VideoNode, timing: Timing) -> vs.VideoNode:
    fps = timing.output_fps
    return core.std.SetFrameProps(out, _DurationNum=fps.denominator, _DurationDen=fps.numerator)


def _build_graph(clip: vs.VideoNode, timing: Timing, engine: Interpolator, opts: Options) -> vs.VideoNode:
    color = _colour_of(clip)
    aligned = _Alignment.of(timing)
    pairs = _PairClips.of(clip, aligned)
    rgb = _windowed(to_rgb(clip, color), NEIGHBOUR_WINDOW)
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
    return _with_output_durations(out, timing)


def _shifted(clip: vs.VideoNode, offset: int) -> vs.VideoNode:
    """Frame k shows frame k + offset, clamped to the clip."""
    n, last = clip.num_frames, clip.num_frames - 1
    if offset > 0:
        parts = [clip[offset:], clip[last] * offset] if offset < n else [clip[last] * n]
    elif offset < 0:
        parts = [clip[0] * -offset, clip[: n + offset]] if -offset < n else [clip[0] * n]
    else:
        return clip
    for part in parts:
        _uncached(part)
    return _uncached(core.std.Splice(parts)) if len(parts) > 1 else parts[0]


def _uncached(node: vs.VideoNode) -> vs.VideoNode:
    """``node``, which only reorders another node's frames, without a frame cache of its own. VapourSynth gives
    such nodes adaptive caches that hold every frame they pass (measured at 1920x1080, factor 2: ~400 MB of
    RGB frames after 24 source frames); the clip they reorder keeps the one cache (``_windowed``)."""
    core.std.SetVideoCache(node, 0)
    return node


def _windowed(rgb: vs.VideoNode, window: int) -> vs.VideoNode:
    """The RGB clip the filter reads, caching a fixed number of frames: the ``window`` consecutive source frames
    one output frame reads, and one more per VapourSynth thread for the frames rendered at once."""
    core.std.SetVideoCache(rgb, 1, 1, window + core.num_threads)
    return rgb


@dataclass(frozen=True)
class _HeldDecision:
    """Which source frames output n lies between when runs of duplicates are held drawings."""

    timing: Timing
    frames: int
    max_run: int
    threshold: float

    def pair(self, n: int, flags: list[vs.VideoFrame]) -> tuple[int, int, int]:
        """(index, first, second): the raw slot's index and the drawings' first frames around output n.

        ``flags`` are the duplicate metric's frames for source frames index - max_run + 1 ... index + max_run.
        """
        index = self.timing.slot(n).index
        base = index - self.max_run + 1

        def is_duplicate(k: int) -> bool:
            return float(flags[k - base].props[DUPLICATE_PROP]) <= self.threshold

        first, second = drawing_pair(index, self.frames, is_duplicate, self.max_run)
        return index, first, second

    def position(self, n: int, first: int, second: int) -> Fraction:
        return Fraction(0) if first == second else self.timing.position(n, first, second)


@dataclass(frozen=True)
class _HeldClips:
    """Clips of the output's length whose frame n is source frame index(n) + offset, for every offset a
    held-drawing decision may need: the source, its float RGB, duplicate metrics and cut statistics."""

    source: dict[int, vs.VideoNode]
    rgb: dict[int, vs.VideoNode]
    flags: list[vs.VideoNode]
    cut_stats: dict[int, vs.VideoNode]

    @classmethod
    def of(cls, clip: vs.VideoNode, rgb: vs.VideoNode, aligned: _Alignment, max_run: int, sc: bool) -> _HeldClips:
        offsets = range(-max_run + 1, max_run + 1)
        metric = duplicate_metric(rgb)
        cut_stats = {}
        if sc:
            stats = pair_differences(rgb)[0]
            cut_stats = {o: aligned(_shifted(stats, o)) for o in range(-max_run, max_run + 1)}
        return cls({o: aligned(_shifted(clip, o)) for o in offsets}, {o: aligned(_shifted(rgb, o)) for o in offsets},
                   [aligned(_shifted(metric, o)) for o in offsets], cut_stats)


def _held_interpolations(clip: vs.VideoNode, clips: _HeldClips, color: ColorSpec, timing: Timing,
                         engine: Interpolator, max_run: int) -> dict[tuple[int, int], vs.VideoNode]:
    """One interpolating node for every (first, second) offset pair a held drawing can span."""
    nodes = {}
    blank = core.std.BlankClip(clips.rgb[0], keep=True)
    for first in range(-max_run + 1, 1):
        for second in range(1, max_run + first + 1):

            def pair_at(n: int, first: int = first, second: int = second) -> tuple[Hashable, Fraction]:
                index = timing.slot(n).index
                return PairKey(index + first, index + second), timing.position(n, index + first, index + second)

            def with_props(n: int, f: list[vs.VideoFrame], first: int = first, second: int = second) -> vs.VideoFrame:
                a = timing.slot(n).index + first
                out = _with_source_props(f[0], f[1], f[2], pair_at(n)[1], timing.time(n) - timing.start(a))
                out.props[PAIR_PROP] = [a, a + second - first]
                return out

            rgb = core.std.ModifyFrame(blank, [clips.rgb[first], clips.rgb[second]],
                                       _FrameInterpolation(pair_at, engine))
            interp = from_rgb(rgb, clip.format, color)
            nodes[first, second] = core.std.ModifyFrame(
                interp, [interp, clips.source[first], clips.source[second]], with_props)
    return nodes


def _build_held_graph(clip: vs.VideoNode, timing: Timing, engine: Interpolator, opts: Options) -> vs.VideoNode:
    """The graph with ``dedup``: output n interpolates between the drawings around it (see dedup.py)."""
    color = _colour_of(clip)
    m = opts.dedup_max_run
    clips = _HeldClips.of(clip, _windowed(to_rgb(clip, color), 2 * m), _Alignment.of(timing), m, opts.sc)
    interps = _held_interpolations(clip, clips, color, timing, engine, m)
    decision = _HeldDecision(timing, clip.num_frames, m, float(opts.dedup_threshold))
    sources = [clips.source[o] for o in range(-m + 1, m + 1)]
    stats_offsets = sorted(clips.cut_stats)

    def select(n: int, f: list[vs.VideoFrame]) -> vs.VideoNode:
        index, a, b = decision.pair(n, f[: 2 * m])
        t = decision.position(n, a, b)
        if t == 0:
            return clips.source[a - index]
        source = f[2 * m : 4 * m]
        cut = marked_cut(source[b - 1 - index + m - 1], source[b - index + m - 1])
        if not cut and opts.sc:
            stats = dict(zip(stats_offsets, f[4 * m :], strict=True))
            after = stats[b - index]
            before = stats[a - 1 - index] if a > 0 else after  # the change into drawing a
            cut = detected_cut([stats[b - 1 - index], before, after], float(opts.sc_threshold))
        if cut:
            return clips.source[(a if t < Fraction(1, 2) else b) - index]
        return interps[a - index, b - index]

    prop_src = clips.flags + sources + [clips.cut_stats[o] for o in stats_offsets]
    out = core.std.FrameEval(clips.source[0], select, prop_src=prop_src, clip_src=sources + list(interps.values()))
    return _with_output_durations(out, timing)
