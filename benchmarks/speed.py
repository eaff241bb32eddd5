"""Speed and memory of the filter through vspipe, next to mvtools FlowFPS in the same run.

    python benchmarks/speed.py [--rounds 2] [--frames 12] [--sizes 640x360 ...] [--factors 2 4] [--model M]

The source is real footage: the shipped demo clip (examples/media, a hand-held city shot, 720x404)
resized to each size and looped, YUV 4:2:0 8-bit. For each size and factor, in the same run and in turns
(so that a machine whose speed drifts affects each alike): our filter with the default settings, with
``dis_preset="fast"``, with ``refine=False`` (no interpolation U-Net), and mvtools FlowFPS (the settings of
``vs_superslomo.methods``). Start-up (Python, torch, model loading, the source's indexing) is excluded by
timing runs of N and 2N source frames and differencing; each figure is the median over rounds, peak memory
the largest resident size of the vspipe process. The day's numpy blending time of a 1280x720 frame is printed
before and after.

Then where the milliseconds of one new 1280x720 frame at factor 2 go, in one process on one torch thread
(the filter runs one such evaluation per core at once).
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
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from busy_core import blending_ms  # benchmarks/ is this script's folder, so on sys.path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "examples" / "media" / "city_cc0_2s.mkv"
SIZES = ["640x360", "1280x720", "1920x1080"]

SOURCE = """
import vapoursynth as vs
core = vs.core
clip = core.bs.VideoSource({clip!r})
clip = core.resize.Bicubic(clip, {w}, {h}, format=vs.YUV420P8)
clip = (clip * (-(-{frames} // clip.num_frames)))[:{frames}]
clip = core.std.AssumeFPS(clip, fpsnum=25, fpsden=1)
"""
METHODS = {
    "ours": "core.slomo.Interpolate(clip, factor={factor}).set_output()\n",
    "ours, fast": "core.slomo.Interpolate(clip, factor={factor}, dis_preset='fast').set_output()\n",
    "ours, no U-Net": "core.slomo.Interpolate(clip, factor={factor}, refine=False).set_output()\n",
    "mvtools": "from vs_superslomo.methods import mvtools_flowfps\nmvtools_flowfps(clip, 25 * {factor}).set_output()\n",
}


def run_vspipe(script: str, env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, output frames and peak resident MB of one vspipe run."""
    with tempfile.NamedTemporaryFile("w", suffix=".vpy", delete=False) as f:
        f.write(script)
        path = f.name
    vspipe = Path(sys.executable).parent / "vspipe"
    try:
        start = time.perf_counter()
        proc = subprocess.Popen([str(vspipe), "-p", path, "--"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        err = proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.unlink(path)
    if status != 0:
        raise RuntimeError(err)
    frames = int(next(line for line in err.splitlines() if line.startswith("Output")).split()[1])
    return seconds, frames, usage.ru_maxrss / 1024


def marginal(size: str, tail: str, env: dict[str, str], frames: int) -> tuple[float, float]:
    """Seconds per output frame without start-up (runs of N and 2N source frames, differenced) and the
    larger run's peak resident MB."""
    w, h = size.split("x")
    runs = []
    for n in (frames, 2 * frames):
        runs.append(run_vspipe(SOURCE.format(clip=str(CLIP), w=w, h=h, frames=n) + tail, env))
    (s1, n1, _), (s2, n2, mb) = runs
    return (s2 - s1) / (n2 - n1), mb


def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(size, factor, method) -> (median seconds per output frame, peak MB), methods taking turns."""
    raw: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for size in args.sizes:
        for factor in args.factors:
            for _ in range(args.rounds):
                for name, tail in METHODS.items():
                    key = (size, factor, name)
                    raw.setdefault(key, []).append(marginal(size, tail.format(factor=factor), env, args.frames))
    return {k: (statistics.median(s for s, _ in v), max(mb for _, mb in v)) for k, v in raw.items()}


def print_table(results: dict[tuple[str, int, str], tuple[float, float]], args: argparse.Namespace) -> None:
    print("| size | factor | ours: output frames/s | ours: ms / new frame | ours, fast: output frames/s "
          "| ours, no U-Net: output frames/s | mvtools: output frames/s | ours / mvtools time "
          "| ours, no U-Net / mvtools time | ours: peak MB | mvtools: peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        for factor in args.factors:
            (ours, ours_mb), (fast, _), (plain, _), (mv, mv_mb) = (results[size, factor, m] for m in METHODS)
            new_ms = ours * factor / (factor - 1) * 1000  # one output frame in `factor` is a source frame
            print(f"| {size} | {factor} | {1 / ours:.1f} | {new_ms:.0f} | {1 / fast:.1f} | {1 / plain:.1f} "
                  f"| {1 / mv:.1f} | {ours / mv:.1f}x | {plain / mv:.1f}x | {ours_mb:.0f} | {mv_mb:.0f} |", flush=True)


def _timed(fn: Callable[[], object], reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def cost_split(model_path: str | None, width: int = 1280, height: int = 720) -> dict[str, float]:
    """Milliseconds of the parts of one new frame at factor 2 on one torch thread, in-process, on two
    frames of the demo clip."""
    from vs_superslomo import Interpolator, load_model
    from vs_superslomo.fallback import fallback_map
    from vs_superslomo.flows import compute_flows
    from vs_superslomo.frame_files import decode_video

    torch.set_num_threads(1)
    frames = torch.from_numpy(decode_video(CLIP)[:2]).permute(0, 3, 1, 2).float() / 255
    frames = F.interpolate(frames, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    a, b = frames[0:1], frames[1:2]
    engine = Interpolator(load_model(model_path), device="cpu", threads=1)
    model, t = engine.model, torch.tensor([0.5])
    with torch.inference_mode():
        i0, i1 = engine._prepare(a), engine._prepare(b)
        f01, f10 = compute_flows(model, i0, i1, engine.dis_preset)
        pair = model.pair_features(i0, i1, f01, f10)
        split = {
            "whole engine call": _timed(lambda: engine.render(a, b, [0.5])),
            "DIS flows (both directions)": _timed(lambda: compute_flows(model, i0, i1, engine.dis_preset)),
            "fail-safe map": _timed(lambda: fallback_map(f01, f10, model.denormalize(i0), model.denormalize(i1))),
            "U-Net: pair's inputs at its scale + first layer": _timed(lambda: model.pair_features(i0, i1, f01, f10)),
            "U-Net: the timestep": _timed(lambda: model._unet_corrections(pair, t.view(1, 1, 1, 1))),
            "synthesis (U-Net timestep + output warps + fusion)": _timed(
                lambda: model.synthesize(i0, i1, f01, f10, t, pair)),
        }
    return split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12, help="source frames of the smaller run (the larger has 2x)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=SIZES)
    parser.add_argument("--factors", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.model:
        env["VS_SUPERSLOMO_MODEL"] = str(Path(args.model).resolve())
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"numpy blending of a 1280x720 frame: {blending_ms(1280, 720, reps=20):.2f} ms")
    print_table(measure(args, env), args)
    print(f"numpy blending of a 1280x720 frame after the table: {blending_ms(1280, 720, reps=20):.2f} ms")
    print("\nOne new 1280x720 frame at factor 2, one torch thread, in-process (ms):")
    for part, ms in cost_split(args.model).items():
        print(f"- {part}: {ms:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
