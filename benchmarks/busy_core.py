"""The engine on 640x360 pairs, on a quiet machine and beside a process that keeps one core busy, in three
layouts (one frame at a time on one or two torch threads; two frames side by side with one torch thread
each, the filter's default, as VapourSynth's threads ask for frames), with OpenMP's waiting active
(spinning) or passive (our default). The figure is wall milliseconds per pair (throughput).

    python benchmarks/busy_core.py [--rounds 2] [--reps 6]

Each setting runs in its own process (OpenMP reads its wait policy once, at load), interleaved over
rounds so that the machine's drift hits every setting alike; the day's numpy blending time is printed
beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CHILD = r"""
import sys, threading, time
import numpy as np
from vs_superslomo import Interpolator, load_model
threads, side, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
big = np.kron(rng.random((47, 90, 3)).astype(np.float32), np.ones((8, 8, 1), np.float32))
a, b = big[:360, :640], big[:360, 6:646]
engine = Interpolator(load_model(), device="cpu", threads=threads)
engine.interpolate(a, b, [0.5])

def work():
    for _ in range(reps):
        engine.interpolate(a, b, [0.5])

workers = [threading.Thread(target=work) for _ in range(side)]
start = time.perf_counter()
for w in workers:
    w.start()
for w in workers:
    w.join()
print((time.perf_counter() - start) / (side * reps) * 1000)
"""
LAYOUTS = {"1 frame x 1 thread": (1, 1), "1 frame x 2 threads": (2, 1), "2 frames x 1 thread (default)": (1, 2)}


def blending_ms(width: int = 640, height: int = 360, reps: int = 50) -> float:
    """numpy's (1 - t) a + t b on float32 RGB frames: the day's yardstick of this machine's speed."""
    a, b = (np.random.rand(height, width, 3).astype(np.float32) for _ in range(2))
    start = time.perf_counter()
    for _ in range(reps):
        (1 - 0.5) * a + 0.5 * b
    return (time.perf_counter() - start) / reps * 1000


def run(layout: str, policy: str, reps: int) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    threads, side = LAYOUTS[layout]
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(side), str(reps)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args()
    settings = [(load, layout, policy) for load in ("quiet", "busy") for layout in LAYOUTS
                for policy in ("ACTIVE", "PASSIVE")]
    results: dict[tuple[str, str, str], list[float]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for load, layout, policy in settings:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
            try:
                results[load, layout, policy].append(run(layout, policy, args.reps))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    print(f"numpy blending of a 640x360 frame today: {blending_ms():.2f} ms")
    print("| machine | layout | OpenMP waiting | ms per pair (median of rounds) |")
    print("|---|---|---|---:|")
    for (load, layout, policy), values in results.items():
        print(f"| {load} | {layout} | {policy.lower()} | {statistics.median(values):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
