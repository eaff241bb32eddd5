"""Motion beyond DIS's reach: a global estimate by phase correlation, and the fusion of candidate flows.

DIS searches coarse to fine, and its coarsest pyramid level is bounded by the frame's size: on a 214x160
frame a 60-pixel pan is lost whole (zero-initialised DIS returns about 0 px where 60 is right). Phase
correlation of the two frames, downscaled, finds a global translation of any size up to the frame's, and DIS
refines it when it is passed as DIS's initial flow. Where the frame holds several motions, the flows from
both starts are fused pixel by pixel, each pixel keeping the flow whose warp matches better around it.

Only pairs whose estimate is both reliable and large take this path, so ordinary footage gets exactly the
flows of plain DIS (and pays only for the phase correlation: ~1 ms at 640x360).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

# A shift is used only where it explains the pair: the shifted frames' difference at most this fraction of
# the unshifted one (``global_shift``).
MAX_MATCH = 0.8
# A global shift counts as large from this fraction of DIS's reach (patch size x 2^coarsest level): DIS lost
# 60-px pans at 214x160 (reach 64) and 80-px ones at 640x360 (reach 128), and found 40 and 60 px.
REACH_FRACTION = 0.25
# Grey levels (0-255) of error counted for a pixel a candidate flow moves out of the frame.
OUTSIDE_ERROR = 12.0
# Phase correlation runs on frames downscaled by a power of two to at most this many pixels a side.
CORRELATION_SIDE = 256


def global_shift(grey0: np.ndarray, grey1: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, match): the translation with grey0(x) ~ grey1(x + d) in full-size pixels, and how well it
    explains the pair: the mean absolute difference of the overlap when shifted, divided by that of the
    frames as they are (near or above 1: no single translation explains the pair better than none)."""
    h, w = grey0.shape
    k = 1
    while max(h, w) > CORRELATION_SIDE * k:
        k *= 2
    size = (max(1, w // k), max(1, h // k))
    a, b = (cv2.resize(g, size, interpolation=cv2.INTER_AREA).astype(np.float32) for g in (grey0, grey1))
    (sx, sy), _ = cv2.phaseCorrelate(a, b)
    # Phase correlation is circular: a shift of more than half the frame reads as its complement. Of the
    # candidates, keep the one whose overlap matches best.
    best, best_error = (sx, sy), math.inf
    for cx in (sx, sx - size[0], sx + size[0]):
        for cy in (sy, sy - size[1], sy + size[1]):
            error = _overlap_error(a, b, round(cx), round(cy))
            if error < best_error:
                best, best_error = (cx, cy), error
    still = _overlap_error(a, b, 0, 0)
    return best[0] * k, best[1] * k, best_error / max(still, 1e-6)


def _overlap_error(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> float:
    """Mean absolute difference between a(x) and b(x + d) where both exist; inf under a fifth of the frame."""
    h, w = a.shape
    if abs(dx) > 0.8 * w or abs(dy) > 0.8 * h:
        return math.inf
    part0 = a[max(0, -dy): h - max(0, dy), max(0, -dx): w - max(0, dx)]
    part1 = b[max(0, dy): h - max(0, -dy), max(0, dx): w - max(0, -dx)]
    return float(np.abs(part0 - part1).mean())


def large_motion(grey0: np.ndarray, grey1: np.ndarray, reach: float) -> tuple[float, float] | None:
    """The global shift F0->1 when it explains the pair and is large for DIS (whose coarsest level spans
    ``reach`` pixels), else None."""
    dx, dy, match = global_shift(grey0, grey1)
    if match > MAX_MATCH or math.hypot(dx, dy) < REACH_FRACTION * reach:
        return None
    return dx, dy


def fuse_flows(grey0: np.ndarray, grey1: np.ndarray, candidates: Sequence[np.ndarray]) -> np.ndarray:
    """Per pixel, the candidate flow F0->1 whose warp of grey1 matches grey0 best over a neighbourhood
    (a box of about a sixteenth of the frame's shorter side); ties keep the earlier candidate. A pixel
    that a candidate moves out of the frame cannot be checked and counts as a fair match
    (``OUTSIDE_ERROR``): in a fast pan the content leaving the frame keeps the pan's motion."""
    h, w = grey0.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    side = max(5, min(h, w) // 16) | 1
    reference = grey0.astype(np.float32)
    target = grey1.astype(np.float32)
    errors = []
    for flow in candidates:
        x, y = xs + flow[..., 0], ys + flow[..., 1]
        warped = cv2.remap(target, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        outside = (x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)
        error = np.where(outside, OUTSIDE_ERROR, np.abs(warped - reference)).astype(np.float32)
        errors.append(cv2.blur(error, (side, side)))
    choice = np.argmin(np.stack(errors), axis=0)
    return np.take_along_axis(np.stack(candidates), choice[None, :, :, None], axis=0)[0]
