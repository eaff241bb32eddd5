"""Held drawings: a run of near-duplicate source frames (anime drawn on 2s and 3s, frames a game capture
repeated) is one drawing whose interval is the whole run, so output frames move smoothly across it.

Detection is local: frame k duplicates frame k - 1 when their largest difference, on the green plane
downscaled by ``DEDUP_DOWNSCALE`` (compression noise averages out, an edge moved by a fraction of a pixel
does not), is at most the threshold. Runs longer than ``max_run`` frames are a still scene, not a held
drawing, and are left alone: a still stretch stays still, and deciding a slot needs only the flags of
the ``2 * max_run`` frames around it, so random access and threads give the same frames.
"""

from __future__ import annotations

from collections.abc import Callable

import vapoursynth as vs

from .colour import analysis_grey

core = vs.core

DEDUP_DOWNSCALE = 4
DUPLICATE_PROP = "PlaneStatsMax"


def duplicate_metric(rgb: vs.VideoNode) -> vs.VideoNode:
    """Frame k carries in ``PlaneStatsMax`` the largest downscaled difference between frames k and k - 1
    (frame 0: 1, never a duplicate)."""
    width = max(1, rgb.width // DEDUP_DOWNSCALE)
    height = max(1, rgb.height // DEDUP_DOWNSCALE)
    green = analysis_grey(rgb, width, height)
    previous = green[0] + green[:-1] if green.num_frames > 1 else green
    diff = core.std.Expr([green, previous], "x y - abs")
    stats = core.std.PlaneStats(diff)
    first = core.std.SetFrameProps(stats[0], **{DUPLICATE_PROP: 1.0})
    return first + stats[1:] if stats.num_frames > 1 else first


def drawing_pair(index: int, frames: int, is_duplicate: Callable[[int], bool], max_run: int) -> tuple[int, int]:
    """The source frames a slot starting at source frame ``index`` lies between, (first, second).

    Inside a held drawing: the drawing's first frame and the next drawing's first frame (second == first
    at the end of the clip: the drawing is held). Elsewhere, and in runs longer than ``max_run``:
    (index, index + 1). ``is_duplicate(k)`` is asked only for k within ``max_run`` of ``index``.
    """
    normal = (index, min(index + 1, frames - 1))
    start = index
    while start > 0 and is_duplicate(start):
        start -= 1
        if index - start >= max_run:
            return normal
    end = index + 1
    while end < frames and is_duplicate(end):
        end += 1
        if end - start > max_run:
            return normal
    if end - start == 1:
        return normal
    return (start, end) if end < frames else (start, start)
