"""Scoring interpolation methods on validation items: PSNR and SSIM (scikit-image)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import Tensor

from ..engine import Interpolator
from ..network import DisPreset, SuperSloMo
from .dataset import ValidationItem

# A method maps (frame0, frame1, timesteps) with (3, H, W) frames in [0, 1] to one frame per timestep.
Method = Callable[[Tensor, Tensor, Sequence[float]], Sequence[Tensor]]


@dataclass
class Score:
    psnr: float
    ssim: float
    frames: int


def _to_uint8_hwc(x: Tensor) -> np.ndarray:
    # Scores are computed on 8-bit frames, as a user would see them.
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def frame_scores(pred: Tensor, target: Tensor) -> tuple[float, float]:
    p, t = _to_uint8_hwc(pred), _to_uint8_hwc(target)
    psnr = float(peak_signal_noise_ratio(t, p, data_range=255))
    ssim = float(structural_similarity(t, p, data_range=255, channel_axis=2))
    return min(psnr, 100.0), ssim


def score_method(method: Method, items: Sequence[ValidationItem]) -> dict[str, Score]:
    """Mean PSNR/SSIM per item name (clip) and over everything (key "mean": mean over clips)."""
    per: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item in items:
        preds = method(item.frame0, item.frame1, item.timesteps)
        for pred, target in zip(preds, item.targets, strict=True):
            per[item.name].append(frame_scores(pred, target))
    out = {name: Score(float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])), len(vals))
           for name, vals in per.items()}
    if out:
        out["mean"] = Score(float(np.mean([s.psnr for s in out.values()])),
                            float(np.mean([s.ssim for s in out.values()])),
                            sum(s.frames for s in out.values()))
    return out


def blend_method(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float]) -> list[Tensor]:
    return [(1 - t) * frame0 + t * frame1 for t in timesteps]


def model_method(model: SuperSloMo, flow_scale: float = 1.0, dis_preset: DisPreset | None = None) -> Method:
    engine = Interpolator(model, device="cpu", flow_scale=flow_scale, dis_preset=dis_preset)

    def run(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float]) -> list[Tensor]:
        return list(engine.interpolate_tensors(frame0[None], frame1[None], list(timesteps)))

    return run


def model_scores(model: SuperSloMo, items: Sequence[ValidationItem]) -> dict[str, Score]:
    was_training = model.training
    try:
        with torch.inference_mode():
            return score_method(model_method(model), items)
    finally:
        model.train(was_training)
