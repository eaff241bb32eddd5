"""Two or more model files timed against each other, interleaved in one process.

    python benchmarks/compare_models.py A.safetensors B.safetensors [--size 1280x720] [--rounds 5]
    python benchmarks/compare_models.py models/superslomo.safetensors --dis-presets medium fast ultrafast

Milliseconds for one interpolated frame at factor 2 (the pair's flows included), each model in turn
in every round, so that a machine whose speed drifts during the run slows all of them alike; frame
blending is timed in the same rounds. Prints the median per model and its ratio to the first.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from vs_superslomo import Interpolator, load_model
from vs_superslomo.options import DIS_PRESETS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model files")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dis-presets", nargs="+", choices=DIS_PRESETS,
                        help="time DIS-flow models once per preset (default: medium only)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    engines: dict[str, Interpolator] = {}
    for path in args.models:
        model = load_model(path)
        presets = args.dis_presets if args.dis_presets and model.flow_net is None else [None]
        for preset in presets:
            name = path if preset is None else f"{path} (DIS {preset})"
            engines[name] = Interpolator(model, threads=torch.get_num_threads(), dis_preset=preset)
    rgb0, rgb1 = torch.rand(1, 3, height, width), torch.rand(1, 3, height, width)
    frame = np.random.rand(height, width, 3).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in engines}
    times["blending"] = []
    for _ in range(args.rounds + 1):  # the first round warms up and is dropped below
        for name, engine in engines.items():
            start = time.perf_counter()
            engine.interpolate_tensors(rgb0, rgb1, [0.5])
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        _ = 0.5 * frame + 0.5 * frame
        times["blending"].append(time.perf_counter() - start)
    first = statistics.median(next(iter(times.values()))[1:])
    print(f"| model ({width}x{height}, factor 2) | median ms / frame | ratio to the first |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values[1:])
        print(f"| {name} | {median * 1000:.1f} | {median / first:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
