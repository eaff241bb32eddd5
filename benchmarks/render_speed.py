"""Rendering in ranges on one machine: 2 worker processes with 1 thread each against 1 worker with 2 threads.

    python benchmarks/render_speed.py [--rounds 2] [--loops 3] [--segment-seconds 1.5] [--clip FILE]

The CLI on the shipped demo clip (examples/media, 720x404, 25 fps, 2 s; played --loops times in a row)
at factor 2 into FFV1, with the shipped model, in the same run and in turns (A B C A B C ...), so that a
machine whose speed drifts affects each configuration alike:

    A  --workers 2 --threads 1    two worker processes, one thread each
    B  --workers 1 --threads 2    one worker process, two threads
    C  --threads 2                the one-process path (no segments), for the cost of the ranges

Output frames per second are wall-clock, start-up included (each worker process imports torch, opens
the input and loads the model once per range). The decoded frames of A and B are also compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
from busy_core import blending_ms  # benchmarks/ is this script's folder, so on sys.path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "examples" / "media" / "city_cc0_2s.mkv"
CONFIGS = {"A: 2 workers x 1 thread": ["--workers", "2", "--threads", "1"],
           "B: 1 worker x 2 threads": ["--workers", "1", "--threads", "2"],
           "C: one process, 2 threads, no segments": ["--threads", "2"]}


def run(clip: Path, out: Path, options: list[str], segment_seconds: float) -> float:
    command = [sys.executable, "-m", "vs_superslomo", str(clip), "-o", str(out), "--factor", "2", "--codec", "ffv1",
               "--segment-seconds", str(segment_seconds), "-q", *options]
    start = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - start


def decoded(path: Path) -> list[bytes]:
    import numpy as np
    import vapoursynth as vs

    clip = vs.core.bs.VideoSource(source=str(path), cachemode=0)
    return [b"".join(np.asarray(f[p]).tobytes() for p in range(3)) for f in clip.frames()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--loops", type=int, default=3, help="the clip this many times in a row (default 3: 6 s)")
    p.add_argument("--segment-seconds", type=float, default=1.5, help="output seconds per range (default 1.5)")
    p.add_argument("--clip", type=Path, default=CLIP)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="render-speed-") as folder:
        clip = Path(folder) / f"looped{args.clip.suffix}"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stream_loop", str(args.loops - 1), "-i",
                        str(args.clip), "-map", "0:v", "-c", "copy", str(clip)], check=True)
        outputs = {name: Path(folder) / f"{k}.mkv" for k, name in enumerate(CONFIGS)}
        for _ in range(args.rounds):
            for name, options in CONFIGS.items():
                outputs[name].unlink(missing_ok=True)
                times[name].append(run(clip, outputs[name], options, args.segment_seconds))
                print(f"{name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
        frames = {name: decoded(path) for name, path in outputs.items()}
    count = len(frames[next(iter(CONFIGS))])
    a, b = list(CONFIGS)[:2]
    print(f"{args.clip.name} x{args.loops}, factor 2 ({count} output frames), FFV1, {args.segment_seconds} s ranges, "
          f"{args.rounds} rounds in turns, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; frames of A and B identical: {frames[a] == frames[b]}")
    print(f"numpy blending of a 640x360 frame in this run: {blending_ms():.2f} ms")
    for name, values in times.items():
        best, median = min(values), statistics.median(values)
        print(f"{name}: {count / median:.2f} output frames/s (median {median:.1f} s, best {best:.1f} s, "
              f"runs {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
