"""Engine speed and memory on this CPU, with plain frame blending timed in the same run.

    python benchmarks/engine_speed.py [--model M] [--pairs N]

For each size and factor: milliseconds per new (interpolated) frame, new frames per second, peak
resident memory of a fresh process doing the work, and the ratio to frame blending. Flows are
computed once per pair, so the cost per new frame falls as the factor grows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch

SIZES = [(640, 360), (1280, 720)]
FACTORS = [2, 4, 8]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _measure(model_path: str | None, width: int, height: int, factor: int, pairs: int) -> dict[str, float]:
    """Runs in a fresh process so that its peak memory is its own."""
    from vs_superslomo import Interpolator, load_model

    engine = Interpolator(load_model(model_path), device="cpu", threads=os.cpu_count())
    rng = np.random.default_rng(0)
    frames = [torch.from_numpy(rng.random((1, 3, height, width), dtype=np.float32)) for _ in range(pairs + 1)]
    steps = [k / factor for k in range(1, factor)]
    engine.interpolate_tensors(frames[0], frames[1], steps, key=-1)  # warm-up
    start = time.perf_counter()
    for i in range(pairs):
        engine.interpolate_tensors(frames[i], frames[i + 1], steps, key=i)
    ours = (time.perf_counter() - start) / (pairs * len(steps))
    a, b = (f[0].numpy() for f in frames[:2])
    start = time.perf_counter()
    reps = 20
    for _ in range(reps):
        for t in steps:
            _ = (1 - t) * a + t * b
    blend = (time.perf_counter() - start) / (reps * len(steps))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms_per_frame": ours * 1000, "blend_ms": blend * 1000, "peak_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--pairs", type=int, default=3, help="frame pairs timed per configuration")
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        w, h, factor, pairs = args.child
        print(json.dumps(_measure(args.model, w, h, factor, pairs)))
        return 0

    print(f"CPU: {_cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}; "
          f"{time.strftime('%Y-%m-%d')}", file=sys.stderr)
    print("| size | factor | ms / new frame | new frames / s | peak memory | blending ms / frame | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    per_frame: dict[tuple[int, int], dict[int, float]] = {}
    configs = [(w, h, f) for (w, h) in SIZES for f in FACTORS] + [(1920, 1080, 2)]
    for w, h, factor in configs:
        cmd = [sys.executable, __file__, "--child", str(w), str(h), str(factor), str(args.pairs)]
        if args.model:
            cmd += ["--model", args.model]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(res.stdout)
        per_frame.setdefault((w, h), {})[factor] = r["ms_per_frame"]
        print(f"| {w}x{h} | {factor} | {r['ms_per_frame']:.0f} | {1000 / r['ms_per_frame']:.2f} | "
              f"{r['peak_mb'] / 1024:.2f} GB | {r['blend_ms']:.1f} | {r['ms_per_frame'] / r['blend_ms']:.0f}x |",
              flush=True)
    for (w, h), by_factor in per_frame.items():
        if 2 in by_factor and 4 in by_factor:
            print(f"\n{w}x{h}: cost per new frame at factor 4 / factor 2 = {by_factor[4] / by_factor[2]:.2f}"
                  f" (flows shared); factor 8 / factor 2 = {by_factor.get(8, float('nan')) / by_factor[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
