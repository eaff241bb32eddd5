"""Soak: a 20,000-frame synthetic 640x360 clip through vspipe at factor 2; resident memory over time.

    python benchmarks/soak.py [--frames 20000] [--model M | --width W [--flow network|dis]] [--threads T]
                              [--limit-mb 300] [--name soak]

Prints the vspipe process's resident memory (VmRSS) every few seconds, writes the curve to
benchmarks/results/NAME.{md,png} and exits non-zero when it grows by more than --limit-mb after
warm-up (the first 5% of the frames). The filter's caches are bounded (4 frame pairs of flows,
VapourSynth's own frame cache), so memory must stay flat however long the clip.

--width W runs a randomly initialised model of that width instead of the shipped one: the width
changes the size of the network's temporary tensors, not what the filter keeps between frames, and
width 2 streams faster than the shipped width 4 (which needs ~2 h on 2 cores here).
--flow picks the random model's flow source: "dis" (the shipped model's kind) or "network".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import IO

RESULTS = Path(__file__).resolve().parent / "results"

SCRIPT = """
import numpy as np
import vapoursynth as vs
core = vs.core
if {threads}:
    core.num_threads = {threads}
W, H, N = 640, 360, {frames}
rng = np.random.default_rng(0)
tex = np.kron(rng.integers(16, 235, (H // 8 + 1, 400)), np.ones((8, 8)))[:H]
base = core.std.BlankClip(width=W, height=H, format=vs.GRAY8, length=N, fpsnum=25)

def paint(n, f):
    out = f.copy()
    x = (7 * n) % (tex.shape[1] - W)
    np.asarray(out[0])[:] = tex[:, x : x + W]
    return out

luma = core.std.ModifyFrame(base, base, paint)
clip = core.std.ShufflePlanes([luma, core.std.BlankClip(luma, color=128)], [0, 0, 0], vs.YUV)
clip = core.resize.Bicubic(clip, format=vs.YUV420P8)
core.slomo.Interpolate(clip, factor=2).set_output()
"""


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (vspipe's wrapper starts the real one)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) / 1024
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(rss_mb(int(child)) for child in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def _run(vspipe: Path, script: str, progress: IO[str], env: dict[str, str],
         args: argparse.Namespace) -> tuple[int, list[tuple[float, float, int]], int]:
    proc = subprocess.Popen([str(vspipe), "-p", script, "--"], stdout=subprocess.DEVNULL, stderr=progress, env=env)
    start = time.monotonic()
    samples: list[tuple[float, float, int]] = []
    total = 2 * args.frames
    while proc.poll() is None:
        time.sleep(args.every)
        if proc.poll() is not None:
            break
        progress.seek(0)
        text = progress.read().replace("\r", "\n").strip().splitlines()
        done = next((int(line.split()[1].split("/")[0]) for line in reversed(text) if line.startswith("Frame:")), 0)
        samples.append((time.monotonic() - start, rss_mb(proc.pid), done))
        print(f"{samples[-1][0]:8.0f} s  {done:6d}/{total} frames  RSS {samples[-1][1]:7.1f} MB", flush=True)
    if proc.returncode != 0:
        progress.seek(0)
        print(progress.read()[-2000:], file=sys.stderr)
    return proc.returncode, samples, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000, help="source frames")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="model file (default: the shipped model)")
    which.add_argument("--width", type=int, help="use a randomly initialised model of this width")
    parser.add_argument("--flow", choices=["network", "dis"], default="dis", help="the random model's flow source")
    parser.add_argument("--name", default="soak", help="results file name (benchmarks/results/NAME.md, .png)")
    parser.add_argument("--threads", type=int, default=0, help="VapourSynth and network threads (default: all)")
    parser.add_argument("--limit-mb", type=float, default=300.0, help="allowed growth after warm-up")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        model = "the shipped model"
        if args.model:
            env["VS_SUPERSLOMO_MODEL"] = str(Path(args.model).resolve())
            model = Path(args.model).name
        elif args.width:
            env["VS_SUPERSLOMO_MODEL"] = _random_model(args.width, args.flow, Path(tmp))
            model = f"a random width-{args.width} model, {args.flow} flows"
        script = Path(tmp) / "soak.vpy"
        script.write_text(textwrap.dedent(SCRIPT.format(frames=args.frames, threads=args.threads)))
        vspipe = Path(sys.executable).parent / "vspipe"
        with tempfile.TemporaryFile("w+") as progress:
            code, samples, total = _run(vspipe, str(script), progress, env, args)
    if code != 0:
        return 1
    warm = [s for s in samples if s[2] >= total * 0.05]
    if len(warm) < 2:
        print("too few samples after warm-up to judge", file=sys.stderr)
        return 1
    growth = max(s[1] for s in warm) - warm[0][1]
    summary = (f"{total} output frames (640x360 YUV420P8, factor 2, {model}) in {samples[-1][0]:.0f} s; "
               f"RSS after warm-up {warm[0][1]:.0f} MB, peak {max(s[1] for s in warm):.0f} MB, "
               f"growth {growth:.0f} MB (limit {args.limit_mb:.0f} MB)")
    print("\n" + summary)
    _report(samples, total, summary, args.name)
    return 0 if growth <= args.limit_mb else 1


def _random_model(width: int, flow: str, directory: Path) -> str:
    import torch

    from vs_superslomo.checkpoint import save_model
    from vs_superslomo.network import ModelConfig, SuperSloMo

    torch.manual_seed(0)
    path = directory / f"random_w{width}.safetensors"
    save_model(SuperSloMo(ModelConfig(width=width, flow=flow)), path,  # type: ignore[arg-type]
               {"note": "random weights for the soak"})
    return str(path)


def _report(samples: list[tuple[float, float, int]], total: int, summary: str, name: str) -> None:
    """The curve as a table (about 20 rows) and a plot, in benchmarks/results/."""
    rows = samples[:: max(1, len(samples) // 20)] + samples[-1:]
    lines = [summary, "", "| time (s) | output frames | RSS (MB) |", "|---:|---:|---:|"]
    lines += [f"| {t:.0f} | {done} | {rss:.0f} |" for t, rss, done in dict.fromkeys(rows)]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([s[2] for s in samples], [s[1] for s in samples])
    ax.axvline(total * 0.05, color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("output frames written by vspipe")
    ax.set_ylabel("resident memory (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"vspipe resident memory, {total // 2:,} source frames at factor 2")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
