"""The fail-safe: where the flows contradict each other, the output falls back toward blending.

Followed forward and then backward, a pixel whose motion was found lands where it started; the distance it
misses by is the pair's forward-backward inconsistency. Occlusions give thin bands of it, which the
interpolation network handles (its visibility maps); garbage flows (motion beyond the estimator, a scene cut
the detector missed, unrelated frames) give wide regions of it. So the fallback weight of a pixel is the
share of inconsistent pixels around it, mapped smoothly from "some" (no fallback) to "most" (blending):
thin bands never fall back, and a region whose motion is wrong fades to blending instead of warping along it.
When most of the frame falls back (unrelated frames: a cut the detector missed), all of it does. Given the
frames, an inconsistent pixel only counts where the two frames carried halfway along the flows disagree:
flat regions, lines and rotating hand-held shots give inconsistent flows that still interpolate well
(falling back there cost 6 dB on a hand-held validation clip).

Pure torch, like the network. The map depends only on the pair (not on the timestep), so the engine computes
it once per pair; a pair where nothing falls back is left exactly as the network made it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .network import backward_warp, flow_length, inconsistency

# A pixel is inconsistent from this many pixels of round-trip error, plus this fraction of its motion (the
# flows of a 100-px pan may miss by a few pixels and still be right), and fully so at twice that.
INCONSISTENT_PX = 2.0
INCONSISTENT_FRACTION = 0.1
# A pixel's warp residual (mean absolute difference, 0-1 range) from which its match counts as bad, and at
# which it is fully bad: with unrelated frames DIS may return flows that agree with each other, but no
# warp explains the pair.
RESIDUAL_START = 0.1
RESIDUAL_FULL = 0.2
# Inconsistent flows still interpolate well where the two frames, each carried halfway along them, agree:
# flat regions and lines, where the flow along the structure is arbitrary (the aperture problem), and where
# a hand-held camera rotates. The mean absolute difference (0-1 range) of the halfway warps from which an
# inconsistent pixel starts to count, and at which it fully counts.
DISAGREE_START = 0.02
DISAGREE_FULL = 0.06
# Share of inconsistent pixels in a neighbourhood (a box of about an eighth of the frame's shorter side)
# from which the output starts to fall back, and at which it is blending.
SHARE_START = 0.45
SHARE_FULL = 0.75
# Share of the whole frame falling back from which the rest of it follows, and at which all of it has.
PAIR_START = 0.5
PAIR_FULL = 0.8
# Consistency is measured on flows averaged over blocks of this size (cost; the map is smooth anyway).
BLOCK = 4
# Frames narrower than this (in either direction) are too small to tell a region from an occlusion band:
# nothing falls back.
MIN_SIDE = 64


def _inconsistent(forward: Tensor, backward: Tensor, px: float) -> Tensor:
    """0-1 per pixel: how far past the tolerance its round trip misses (``px`` pixels of slack, flows in
    pixels of their own grid). A pixel that moves out of the frame has no way back and counts as consistent:
    in a fast pan that is a wide band, and the other frame shows it."""
    tolerance = px + INCONSISTENT_FRACTION * flow_length(forward)
    bad = ((inconsistency(forward, backward) - tolerance) / tolerance).clamp(0, 1)
    return bad * _inside(forward)


def _inside(forward: Tensor) -> Tensor:
    """1 where a pixel's flow keeps it in the frame, else 0, (N, 1, H, W)."""
    h, w = forward.shape[-2:]
    x = torch.arange(w, device=forward.device, dtype=forward.dtype).view(1, 1, w) + forward[:, 0]
    y = torch.arange(h, device=forward.device, dtype=forward.dtype).view(1, h, 1) + forward[:, 1]
    inside = (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
    return inside.unsqueeze(1).to(forward.dtype)


def _mismatched(image0: Tensor, image1: Tensor, forward: Tensor) -> Tensor:
    """0-1 per pixel: how badly image1 warped along ``forward`` matches image0 (mean over channels)."""
    residual = (image0 - backward_warp(image1, forward)).abs().mean(dim=1, keepdim=True)
    return _smoothstep(residual, RESIDUAL_START, RESIDUAL_FULL)


def _disagreeing(image0: Tensor, image1: Tensor, f01: Tensor, f10: Tensor) -> Tensor:
    """0-1 per pixel: how far the two frames, each warped halfway toward the other, disagree."""
    halfway0 = backward_warp(image0, 0.5 * f10)
    halfway1 = backward_warp(image1, 0.5 * f01)
    difference = (halfway0 - halfway1).abs().mean(dim=1, keepdim=True)
    return _smoothstep(difference, DISAGREE_START, DISAGREE_FULL)


def fallback_map(f01: Tensor, f10: Tensor, i0: Tensor | None = None, i1: Tensor | None = None) -> Tensor:
    """(N, 1, H, W) in [0, 1]: how far each output pixel falls back to blending, from flows (N, 2, H, W)
    in pixels and, when given, the frames (N, C, H, W; 0-1 range) they connect. Exactly 0 where the flows
    agree (and, with frames, explain the pair). Only differences of the frames count, so frames offset by a
    constant (the network's normalised frames) give the same map."""
    h, w = f01.shape[-2:]
    if min(h, w) < MIN_SIDE:
        return torch.zeros_like(f01[:, :1])
    block = BLOCK
    small = [F.avg_pool2d(f.float(), block) / block for f in (f01, f10)]
    px = INCONSISTENT_PX / block
    bad = torch.maximum(_inconsistent(small[0], small[1], px), _inconsistent(small[1], small[0], px))
    if i0 is not None and i1 is not None:
        frames = [F.avg_pool2d(x.float(), block) for x in (i0, i1)]
        inside = [_inside(f) for f in small]
        bad = bad * _disagreeing(frames[0], frames[1], small[0], small[1])
        bad = torch.maximum(bad, _mismatched(frames[0], frames[1], small[0]) * inside[0])
        bad = torch.maximum(bad, _mismatched(frames[1], frames[0], small[1]) * inside[1])
    share = _box_mean(bad, max(3, min(h, w) // (8 * block)) | 1)
    weight = _smoothstep(share, SHARE_START, SHARE_FULL)
    # A pair whose flows mostly contradict each other (unrelated frames) is not trusted anywhere.
    whole = _smoothstep(weight.mean(dim=(1, 2, 3), keepdim=True), PAIR_START, PAIR_FULL)
    weight = torch.maximum(weight, whole)
    weight = F.interpolate(weight, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    return weight.to(f01.dtype)


def _box_mean(x: Tensor, side: int) -> Tensor:
    """The mean over a side x side box around each pixel (clipped at the borders), as two 1-D passes."""
    rows = F.avg_pool2d(x, (side, 1), stride=1, padding=(side // 2, 0), count_include_pad=False)
    return F.avg_pool2d(rows, (1, side), stride=1, padding=(0, side // 2), count_include_pad=False)


def _smoothstep(x: Tensor, start: float, full: float) -> Tensor:
    x = ((x - start) / (full - start)).clamp(0, 1)
    return x * x * (3 - 2 * x)


def fall_back(frame: Tensor, i0: Tensor, i1: Tensor, t: Tensor, weight: Tensor) -> Tensor:
    """``frame`` (N, 3, H, W) moved toward the blend (1 - t) i0 + t i1 by ``weight`` (1, 1, H, W)."""
    tt = t.to(frame.dtype).view(-1, 1, 1, 1)
    blend = (1 - tt) * i0 + tt * i1
    return frame + weight * (blend - frame)
