"""Can knowing less about *when* help? Issue 17's last bar (+0.5 dB over the classical baseline on every
large-motion validation clip) is missed on `visp-ellipse` and `visp-line`, whose dropped frames sit off their
nominal times (``evaluate --timing``). This measures three ways of acting on that without the ground truth,
on training clips and on validation clips alike, so that a setting can be chosen where it is not scored:

- pace (beta): move along our path to t' = t - k t(1 - t), k = beta (n - p) / (4 c), where p, c, n are the
  mean DIS motion of the pairs before, at and after the gap (constant acceleration of the speed; beta 1);
- spread (d): average our path over t' +- d/32 of the gap (a hedge: the MSE-best frame for an unsure time);
- mix (alpha): alpha of that and 1 - alpha of blending (a stronger hedge).

    python benchmarks/timing_hedges.py [--windows 16]    # about 15 minutes on 2 cores

Prints, per split, the mean PSNR change over ours at the nominal time for the best settings on the training
clips, then what those settings give on validation against the classical baseline (model card, issue 17).
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

import numpy as np
import torch

from vs_superslomo.checkpoint import load_model
from vs_superslomo.classical_flow import dis_flows
from vs_superslomo.methods import ValidationItem, classical_method, model_method, psnr
from vs_superslomo.train import sources
from vs_superslomo.train.dataset import windows

GRID = np.array([k / 32 for k in range(1, 32)])
BETAS = (0.0, 0.125, 0.25, 0.375, 0.5)
SPREADS = (0, 1, 2, 3, 4)
MIXES = (1.0, 0.95, 0.9)
SETTINGS = list(itertools.product(BETAS, SPREADS, MIXES))
TRAIN_CLIPS = ("diver", "coin", "pens", "face", "visp-mire", "visp-mbt-cube", "visp-cube")
LARGE_MOTION = ("dlib", "visp-ellipse", "visp-line")  # median motion >= 4 px (model card, Validation)


def _speed(a: torch.Tensor, b: torch.Tensor) -> float:
    f01, _ = dis_flows(a[None], b[None])
    return float(f01[0].norm(dim=0).mean())


def _paced(t: float, beta: float, speeds: tuple[float, float, float] | None) -> float:
    if speeds is None:
        return t
    p, c, n = speeds
    k = float(np.clip(beta * (n - p) / (4 * max(c, 1e-3)), -1, 1))
    return t - k * t * (1 - t)


def _window_scores(item: ValidationItem, path: torch.Tensor) -> list[dict[tuple[float, int, float], float]]:
    """PSNR of every setting for each target of one window, from ours rendered at every GRID time."""
    speeds = None
    if item.before is not None and item.after is not None:
        speeds = (_speed(item.before, item.frame0), _speed(item.frame0, item.frame1), _speed(item.frame1, item.after))
    out = []
    for t, target in zip(item.timesteps, item.targets, strict=True):
        scores = {}
        for beta, spread, mix in SETTINGS:
            tp = _paced(t, beta, speeds)
            near = np.where(abs(GRID - tp) <= spread / 32 + 1e-9)[0]
            frame = path[near if len(near) else [int(np.argmin(abs(GRID - tp)))]].mean(0)
            if mix < 1:
                frame = mix * frame + (1 - mix) * ((1 - tp) * item.frame0 + tp * item.frame1)
            scores[(beta, spread, mix)] = psnr(frame, target)
        out.append(scores)
    return out


def _clip_scores(names: tuple[str, ...], split: str, count: int) -> dict[tuple[int, str], dict]:
    """Per (factor, clip): mean PSNR of every setting, and of the classical baseline (key "classical")."""
    ours, classical = model_method(load_model()), classical_method()
    per: dict[tuple[int, str], dict] = defaultdict(lambda: defaultdict(list))
    for clip in (c for c in sources.CLIPS if c.name in names):
        frames = sources.clip_frames(clip)
        for factor in (2, 4):
            for span in sources.shots(clip, split):
                for item in windows(clip.name, frames, factor, count, span, distinct=True):
                    path = torch.stack(list(ours(item.frame0, item.frame1, list(GRID), item.before, item.after)))
                    for scores in _window_scores(item, path):
                        for key, value in scores.items():
                            per[(factor, clip.name)][key].append(value)
                    for pred, target in zip(classical(item.frame0, item.frame1, item.timesteps), item.targets,
                                            strict=True):
                        per[(factor, clip.name)]["classical"].append(psnr(pred, target))
    return {k: {s: float(np.mean(v)) for s, v in d.items()} for k, d in per.items()}


def _gains(scores: dict[tuple[int, str], dict], setting: tuple[float, int, float]) -> dict[tuple[int, str], float]:
    return {k: v[setting] - v[(0.0, 0, 1.0)] for k, v in scores.items()}


def _report(train: dict, val: dict, top: int) -> None:
    ranked = sorted(SETTINGS, key=lambda s: -float(np.mean(list(_gains(train, s).values()))))[:top]
    print("beta spread mix | train: mean gain, worst clip | validation: mean gain x2, x4, city x4 | "
          "validation, ours - classical on " + ", ".join(LARGE_MOTION) + " (x2 then x4)")
    for s in [(0.0, 0, 1.0), *ranked]:
        tg, vg = _gains(train, s), _gains(val, s)
        vs_classical = [val[(f, c)][s] - val[(f, c)]["classical"] for f in (2, 4) for c in LARGE_MOTION]
        print(f"{s[0]:.3f} {s[1]} {s[2]:.2f} | {np.mean(list(tg.values())):+.3f} {min(tg.values()):+.2f} | "
              f"{np.mean([v for k, v in vg.items() if k[0] == 2]):+.3f} "
              f"{np.mean([v for k, v in vg.items() if k[0] == 4]):+.3f} {vg[(4, 'city')]:+.2f} | "
              + " ".join(f"{x:+.2f}" for x in vs_classical))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=16, help="windows per training clip (validation: 12)")
    parser.add_argument("--top", type=int, default=8, help="settings shown, best on the training clips first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = _clip_scores(TRAIN_CLIPS, "train", args.windows)
    val = _clip_scores(tuple(c.name for c in sources.CLIPS if sources.shots(c, "val")), "val", 12)
    _report(train, val, args.top)


if __name__ == "__main__":
    main()
