"""The before/after plot of the README's "Exact time" section: a bar animated on 2s and 3s at 24 fps,
interpolated to 60 fps with and without ``dedup``; the bar's measured position against time.

    python benchmarks/held_drawings.py      (writes benchmarks/results/held_drawings.png)

The model is the shipped one; the measured position is the bar's intensity centroid (tests/test_time.py
explains why that measures time whatever the interpolation's quality).
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_time import OUT_FPS, X0, V, anime_clip, centroid

from vs_superslomo import interpolate

RESULTS = Path(__file__).resolve().parent / "results"
HOLDS = [2, 3, 2, 2, 3, 3, 2, 3, 2, 2, 3]


def main() -> int:
    clip, _ = anime_clip(HOLDS)
    plain = [centroid(f) for f in interpolate(clip, fps_num=OUT_FPS).frames()]
    dedup = [centroid(f) for f in interpolate(clip, fps_num=OUT_FPS, dedup=True).frames()]
    times = np.arange(len(plain)) / OUT_FPS
    source_times = np.arange(clip.num_frames) / 24
    last_start = Fraction(sum(HOLDS[:-1]), 24)
    true_line = [X0 + V * min(t, float(last_start)) for t in times]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(times, true_line, color="grey", lw=1, label="true motion (v * t)")
    ax.step(source_times, [centroid(f) for f in clip.frames()], where="post", color="black", lw=1,
            label="source: drawings held 2-3 frames (24 fps)")
    ax.plot(times, plain, "o", ms=3, label="60 fps, dedup=False: the judder stays")
    ax.plot(times, dedup, "x", ms=4, label="60 fps, dedup=True: smooth")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("bar position (px)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "held_drawings.png", dpi=100)
    worst = max(abs(d - t) for d, t in zip(dedup, true_line, strict=True))
    stair = max(abs(p - t) for p, t in zip(plain, true_line, strict=True))
    print(f"largest distance from the true motion: dedup {worst:.2f} px, plain {stair:.2f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
