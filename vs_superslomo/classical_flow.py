"""Bidirectional optical flow from OpenCV's DIS (Kroeger et al., ECCV 2016), for the hybrid model.

DIS is a classical, non-learned estimator: a coarse-to-fine inverse-search of patches with
variational refinement. It runs on the CPU on 8-bit grey frames; its flows replace the flow
U-Net's in models whose config says ``flow="dis"`` (they are inputs of the interpolation U-Net,
so nothing is back-propagated through them).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch import Tensor

from .large_motion import fuse_flows, large_motion
from .options import DIS_PRESETS, DisPreset

_OPENCV_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_PRESETS = {name: _OPENCV_PRESETS[name] for name in DIS_PRESETS}

# A DIS object keeps per-call buffers, so each thread gets its own.
_local = threading.local()


def _estimator(preset: DisPreset) -> tuple[cv2.DISOpticalFlow, int]:
    """This thread's estimator for ``preset`` and the preset's own finest scale."""
    cache: dict[str, tuple[cv2.DISOpticalFlow, int]] | None = getattr(_local, "estimators", None)
    if cache is None:
        cache = _local.estimators = {}
    if preset not in cache:
        dis = cv2.DISOpticalFlow.create(_PRESETS[preset])
        cache[preset] = (dis, dis.getFinestScale())
    return cache[preset]


def _coarsest_scale(height: int, width: int, patch_size: int) -> int:
    """The coarsest pyramid level OpenCV's DIS picks for a frame size (its own formula, dis_flow.cpp)."""
    by_motion = int(math.log(max(height, width) / (4.0 * patch_size)) / math.log(2.0) + 0.5)
    patches = min(height, width) // patch_size
    by_patch = int(math.log(patches) / math.log(2.0)) if patches > 0 else 0
    return max(0, min(by_motion, by_patch))


def _finest_scale_for(dis: cv2.DISOpticalFlow, preset_finest: int, height: int, width: int) -> None:
    # When a frame is so small that DIS's coarsest level is finer than the preset's finest one, DIS
    # computes nothing and returns whatever its buffers hold from earlier calls: flows that are wrong
    # and depend on what the thread computed before (measured with OpenCV 5.0 on 64x32 frames with the
    # fast presets). Stopping at the coarsest level keeps every call self-contained.
    coarsest = _coarsest_scale(height, width, dis.getPatchSize())
    dis.setFinestScale(max(0, min(preset_finest, coarsest)))


# Rows converted at a time to grey: the steps in between are frame-sized otherwise (four 25 MB arrays at 1080p).
GREY_BAND_ROWS = 128


def _grey_u8(rgb: Tensor, to_rgb: Callable[[Tensor], Tensor] | None = None) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] (or anything ``to_rgb`` turns into it, band by band) to an (H, W) uint8 luma image
    (OpenCV's BT.601 grey, as DIS expects)."""
    height, width = rgb.shape[-2:]
    grey = np.empty((height, width), np.uint8)
    for top in range(0, height, GREY_BAND_ROWS):
        band = rgb[:, top : top + GREY_BAND_ROWS]
        band = band if to_rgb is None else to_rgb(band[None])[0]
        rgb8 = (band.detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8).permute(1, 2, 0)
        grey[top : top + GREY_BAND_ROWS] = cv2.cvtColor(np.ascontiguousarray(rgb8.numpy()), cv2.COLOR_RGB2GRAY)
    return grey


def _constant_flow(shape: tuple[int, ...], shift: tuple[float, float]) -> np.ndarray:
    flow = np.empty((*shape, 2), np.float32)
    flow[..., 0], flow[..., 1] = shift
    return flow


def _calc(dis: cv2.DISOpticalFlow, grey0: np.ndarray, grey1: np.ndarray,
          initial: np.ndarray | None = None) -> np.ndarray:
    # OpenCV 5.0's DIS does not give the same flows for a zeroed array here as for None (measured: up to
    # 8.6 px apart on a validation pair); the shipped model was trained and validated with this form. DIS
    # refines whatever flow it is given, at every pyramid level (an array of the frame's size is its initial flow).
    flow = np.zeros((*grey0.shape, 2), np.float32) if initial is None else initial.copy()
    return np.asarray(dis.calc(grey0, grey1, flow))


def _pair_flows(dis: cv2.DISOpticalFlow, grey0: np.ndarray, grey1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F0->1, F1->0) as (H, W, 2) arrays; motion beyond DIS's reach (``large_motion``) seeds DIS."""
    forward, backward = _calc(dis, grey0, grey1), _calc(dis, grey1, grey0)
    patch = dis.getPatchSize()
    height, width = grey0.shape
    shift = large_motion(grey0, grey1, patch * 2 ** _coarsest_scale(height, width, patch))
    if shift is None:
        return forward, backward
    # Candidates: plain DIS, DIS seeded with the shift, and the shift itself (for content that leaves the
    # frame, where DIS has nothing to match and drifts).
    seeds = [_constant_flow(grey0.shape, shift), _constant_flow(grey0.shape, (-shift[0], -shift[1]))]
    seeded = [_calc(dis, grey0, grey1, seeds[0]), _calc(dis, grey1, grey0, seeds[1])]
    return (fuse_flows(grey0, grey1, [forward, seeded[0], seeds[0]]),
            fuse_flows(grey1, grey0, [backward, seeded[1], seeds[1]]))


def dis_flows(rgb0: Tensor, rgb1: Tensor, preset: DisPreset = "medium",
              to_rgb: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Flows (F0->1, F1->0) in pixels, (N, 2, H, W), between RGB batches (N, 3, H, W) in [0, 1], or batches that
    ``to_rgb`` turns into those (applied to bands of rows, so no converted copy of a whole frame is made).

    The result has the device and dtype of the input.
    """
    if preset not in _PRESETS:
        raise ValueError(f"DIS preset must be one of {', '.join(DIS_PRESETS)}, got {preset!r}")
    dis, preset_finest = _estimator(preset)
    height, width = rgb0.shape[-2:]
    _finest_scale_for(dis, preset_finest, height, width)
    shape = (rgb0.shape[0], 2, height, width)
    forward = torch.empty(shape, dtype=rgb0.dtype, device=rgb0.device)
    backward = torch.empty(shape, dtype=rgb0.dtype, device=rgb0.device)
    for i, (a, b) in enumerate(zip(rgb0, rgb1, strict=True)):
        f, g = _pair_flows(dis, _grey_u8(a, to_rgb), _grey_u8(b, to_rgb))
        forward[i] = torch.from_numpy(f).permute(2, 0, 1)
        backward[i] = torch.from_numpy(g).permute(2, 0, 1)
    return forward, backward
