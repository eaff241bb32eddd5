"""Super SloMo's losses without downloads: census replaces the VGG perceptual loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..network import Synthesis, backward_warp


def charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def _ternary(img: Tensor, patch: int = 7) -> Tensor:
    grey = (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) * 255
    pad = patch // 2
    patches = F.unfold(F.pad(grey, (pad, pad, pad, pad), mode="replicate"), patch)
    patches = patches.view(grey.shape[0], patch * patch, *grey.shape[-2:])
    diff = patches - grey
    return diff / torch.sqrt(0.81 + diff * diff)


def census(x: Tensor, y: Tensor) -> Tensor:
    """Soft Hamming distance between 7x7 ternary census transforms (robust to brightness changes)."""
    d = (_ternary(x) - _ternary(y)) ** 2
    return (d / (0.1 + d)).mean()


def smoothness(flow: Tensor) -> Tensor:
    return (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean()


def end_point_error(flow: Tensor, label: Tensor, huber: float = 0.0) -> Tensor:
    """Per-pixel end-point error (N, H, W); with ``huber`` > 0 (pixels) it is quadratic below that distance.

    Plain L1 pulls towards the median label, which is exactly zero wherever many pixels do not move
    (locked-off scenes): the flow U-Net then settles on zero flow and never leaves it. The Huber form
    keeps a gradient proportional to the error near zero.
    """
    distance = torch.linalg.vector_norm(flow - label, dim=1)
    if huber <= 0:
        return distance
    return torch.where(distance < huber, 0.5 * distance * distance / huber, distance - 0.5 * huber)


def end_point_ratio(flow: Tensor, label: Tensor, valid: Tensor) -> float:
    """Mean end-point error over that of zero flow, on valid pixels: 1.0 for zero flow, 0 for the label."""
    error = (torch.linalg.vector_norm(flow - label, dim=1) * valid).sum()
    zero = (torch.linalg.vector_norm(label, dim=1) * valid).sum()
    return float(error / zero.clamp_min(1e-12))


@dataclass(frozen=True)
class LossWeights:
    reconstruction: float = 1.0
    census: float = 0.1
    warping: float = 0.4
    smoothness: float = 0.01
    flow: float = 0.01  # end-point error against true flows (synthetic samples only)
    flow_huber: float = 1.0  # pixels; 0 gives the plain L1 end-point error

    @property
    def flow_only(self) -> bool:
        """Only the end-point error counts (the flow U-Net's pre-training): nothing needs the synthesis."""
        return self.reconstruction == self.census == self.warping == self.smoothness == 0.0


def flow_error(batch: dict[str, Tensor], f01: Tensor, f10: Tensor, huber: float) -> Tensor:
    """Mean end-point error of both flows over the labelled pixels of the batch's samples with true flows."""
    has = batch["has_flow"].view(-1, 1, 1)
    if float(has.sum()) == 0:
        return torch.zeros((), device=f01.device)
    e01 = end_point_error(f01, batch["f01"], huber) * batch["v01"]
    e10 = end_point_error(f10, batch["f10"], huber) * batch["v10"]
    denom = (has * (batch["v01"] + batch["v10"])).sum().clamp_min(1.0)
    return ((e01 + e10) * has).sum() / denom


def total_loss(
    batch: dict[str, Tensor], out: Synthesis | None, f01: Tensor, f10: Tensor, weights: LossWeights,
    epe_fade: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """The weighted loss and its parts; ``out`` may be None when ``weights.flow_only``."""
    epe = flow_error(batch, f01, f10, weights.flow_huber)
    if out is None:
        if not weights.flow_only:
            raise ValueError("the synthesis is needed for every loss but the end-point error")
        return weights.flow * epe_fade * epe, {"epe": float(epe.detach())}
    i0, i1, it = batch["i0"], batch["i1"], batch["it"]
    pred = out.frame
    rec = charbonnier(pred, it)
    cen = census(pred, it)
    warp = (
        (backward_warp(i0, out.flow_t0) - it).abs().mean()
        + (backward_warp(i1, out.flow_t1) - it).abs().mean()
        + (backward_warp(i1, f01) - i0).abs().mean()
        + (backward_warp(i0, f10) - i1).abs().mean()
    )
    smooth = smoothness(f01) + smoothness(f10)
    w = weights
    loss = (w.reconstruction * rec + w.census * cen + w.warping * warp + w.smoothness * smooth
            + w.flow * epe_fade * epe)
    named = (("rec", rec), ("census", cen), ("warp", warp), ("smooth", smooth), ("epe", epe))
    parts = {k: float(v.detach()) for k, v in named}
    return loss, parts
