"""Where a parallel render cuts the output into ranges: keyframe-friendly starts, at scene cuts when near.

Every output frame depends only on its source frames, so any cut gives the same frames; the choice
only decides where each segment's encoder must start a keyframe. A range starts, in this order of
preference, on the first output frame of a new shot (a cut the filter honours: marked, or detected
as the filter detects it) within ``CUT_SEARCH_SECONDS`` of the nominal boundary; on an output frame
that is a source frame itself (t == 0) within half a range of it; or on the nominal boundary.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from . import options as option_info
from .timing import Timing, VariableTiming

CUT_SEARCH_SECONDS = 2.0  # of output time either side of a nominal boundary: source frames decoded to look for cuts


def output_timing(job: Any) -> Timing | None:
    """The time map of the conversion: output frame -> source pair and t (None if it does not fit the output)."""
    source, out = job.selection.clip, job.out
    output_fps = Fraction(out.fps_num, out.fps_den) * job.slowdown
    starts = getattr(job.selection, "starts", None)  # variable frame rate: each frame's start and the end
    if starts is not None:
        timing: Timing = VariableTiming.from_starts(starts, output_fps)
    elif source.fps_num == 0:
        return None
    else:
        timing = Timing(source.num_frames, Fraction(source.fps_num, source.fps_den), output_fps)
    return timing if timing.output_frames == out.num_frames else None


def source_cuts(clip: Any, first: int, end: int, detect: bool) -> list[int]:
    """Source frames i in [first, end) that start a new shot: the pair (i - 1, i) is a cut for the filter."""
    from .colour import ColorSpec, to_rgb
    from .scene_cuts import detected_cut, marked_cut, pair_differences

    lo, hi = max(0, first - 2), min(clip.num_frames, end + 2)  # neighbours of the pairs, as in the whole clip
    part = clip[lo:hi]
    if part.num_frames < 4:
        return []
    with clip.get_frame(0) as frame:
        color = ColorSpec.of(clip, frame.props)
    diffs = pair_differences(to_rgb(part, color))
    threshold = float(option_info.default("sc_threshold"))
    cuts = []
    for k in range(1, part.num_frames - 2):  # pair (k, k + 1) of the part, with both neighbours inside it
        i = lo + k + 1
        if not first <= i < end:
            continue
        if marked_cut(part.get_frame(k), part.get_frame(k + 1)) or (
                detect and detected_cut([d.get_frame(k) for d in diffs], threshold)):
            cuts.append(i)
    return cuts


def _cut_starts(job: Any, timing: Timing, lo: int, hi: int) -> list[int]:
    """Output frames in [lo, hi] that are the first of a new shot."""
    first, end = timing.slot(lo).index, timing.slot(hi).index + 1
    cuts = source_cuts(job.selection.clip, first, end, detect=not job.args.no_sc)
    starts = (math.ceil(timing.start(i) * timing.output_fps) for i in cuts)
    return [n for n in starts if lo <= n <= hi]


def _start_near(job: Any, timing: Timing | None, nominal: int, lo: int, hi: int, search: int) -> int:
    if timing is None:
        return nominal
    near = (max(lo, nominal - search), min(hi, nominal + search))
    cuts = _cut_starts(job, timing, *near)
    if cuts:
        return min(cuts, key=lambda n: (abs(n - nominal), n))
    for n in sorted(range(lo, hi + 1), key=lambda n: (abs(n - nominal), n)):
        if timing.slot(n).t == 0:
            return n
    return nominal


def plan_ranges(job: Any, seconds: float) -> list[tuple[int, int]]:
    """[first, end) output frame ranges of about ``seconds`` each, covering ``job.out``."""
    out = job.out
    total = out.num_frames
    fps = Fraction(out.fps_num, out.fps_den)
    length = max(1, round(seconds * fps))
    search = max(1, round(CUT_SEARCH_SECONDS * fps))
    timing = output_timing(job)
    starts = [0]
    for nominal in range(length, total, length):
        lo, hi = max(starts[-1] + 1, nominal - length // 2), min(total - 1, nominal + length // 2)
        if lo <= hi:
            starts.append(_start_near(job, timing, min(max(nominal, lo), hi), lo, hi, search))
    return list(zip(starts, [*starts[1:], total], strict=True))
