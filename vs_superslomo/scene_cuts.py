"""Scene-cut detection: which pairs of source frames must never be morphed into each other."""

from __future__ import annotations

import vapoursynth as vs

from .colour import analysis_grey

core = vs.core

# Scene cuts are judged on frames downscaled to this width: the layout of a shot survives, so
# a cut changes it a lot, while motion within a shot moves content by a small fraction of it.
SC_ANALYSIS_WIDTH = 48
# A cut's difference must also exceed this multiple of its neighbouring pairs' differences.
SC_NEIGHBOUR_RATIO = 1.6
DIFF_PROP = "PlaneStatsDiff"


def is_scene_cut(diff: float, before: float, after: float, threshold: float) -> bool:
    """A pair is a cut when its difference is above the threshold and stands out from its neighbours.

    Fast motion raises the difference of every pair in a shot alike; a cut raises only its own.
    """
    return diff > threshold and diff > SC_NEIGHBOUR_RATIO * max(before, after)


def pair_differences(rgb: vs.VideoNode) -> tuple[vs.VideoNode, vs.VideoNode, vs.VideoNode]:
    """Clips whose frame i carries, in ``PlaneStatsDiff``, the difference of pair (i, i + 1), of the
    pair before it and of the pair after it; measured on the green plane of the RGB clip."""
    last = rgb.num_frames - 1
    small_w = min(rgb.width, SC_ANALYSIS_WIDTH)
    small_h = max(1, round(rgb.height * small_w / rgb.width))
    green = analysis_grey(rgb, small_w, small_h)
    stats = core.std.PlaneStats(green, green[1:] + green[last])
    before = stats[0] + stats[:last] if last > 0 else stats
    after = stats[1:] + stats[last] if last > 0 else stats
    return stats, before, after


def marked_cut(first: vs.VideoFrame, second: vs.VideoFrame) -> bool:
    """A cut the source marks itself, honoured also without detection."""
    return bool(first.props.get("_SceneChangeNext", 0)) or bool(second.props.get("_SceneChangePrev", 0))


def detected_cut(diffs: list[vs.VideoFrame], threshold: float) -> bool:
    """Detection from the three frames of :func:`pair_differences` at one pair."""
    diff, before, after = (float(f.props.get(DIFF_PROP, 0.0)) for f in diffs)
    return is_scene_cut(diff, before, after, threshold)
