"""Speed and memory of the filter through vspipe, next to mvtools FlowFPS in the same run.

    python benchmarks/speed.py [--frames 4] [--model M]

For 640x360, 1280x720 and 1920x1080 at factors 2, 4 and 8: output frames per second and peak memory
of `vspipe` running `core.slomo.Interpolate` on a synthetic moving YUV 4:2:0 8-bit clip, the same
for mvtools FlowFPS, and the ratio. Then the cost split of one interpolated frame: flow network,
interpolation network, warping, colour conversion and VapourSynth overhead (the rest).
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

import torch

SIZES = [(640, 360), (1280, 720), (1920, 1080)]
FACTORS = [2, 4, 8]

SOURCE = """
import numpy as np
import vapoursynth as vs
core = vs.core
W, H, N = {w}, {h}, {frames}
# A random texture wider than the frame, panned 16 pixels per frame.
rng = np.random.default_rng(0)
tex = np.kron(rng.integers(16, 235, (H // 8 + 1, (W + 16 * N) // 8 + 1)), np.ones((8, 8)))
big = core.std.BlankClip(width=W + 16 * N, height=H, format=vs.GRAY8, length=1)

def paint(n, f):
    out = f.copy()
    np.asarray(out[0])[:] = tex[:H, : W + 16 * N]
    return out

luma = core.std.ModifyFrame(big, big, paint)
big = core.std.ShufflePlanes([luma, core.std.BlankClip(luma, color=128)], [0, 0, 0], vs.YUV)
big = core.resize.Bicubic(big, format=vs.YUV420P8)
clip = core.std.Splice([core.std.CropAbs(big, W, H, left=16 * i) for i in range(N)])
clip = core.std.AssumeFPS(clip, fpsnum=25, fpsden=1)
"""

OURS = "core.slomo.Interpolate(clip, factor={factor}, sc=False).set_output()\n"
MVTOOLS = """
sup = core.mv.Super(clip, pel=2)
bv = core.mv.Recalculate(sup, core.mv.Analyse(sup, isb=True, blksize=16, overlap=8, truemotion=True),
                         blksize=8, overlap=4, truemotion=True)
fv = core.mv.Recalculate(sup, core.mv.Analyse(sup, isb=False, blksize=16, overlap=8, truemotion=True),
                         blksize=8, overlap=4, truemotion=True)
core.mv.FlowFPS(clip, sup, bv, fv, num=25 * {factor}, den=1).set_output()
"""
CONVERT_ONLY = """
rgb = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="709")
core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix_s="709").set_output()
"""


def run_vspipe(script: str, env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, output frames and peak resident MB of one vspipe run."""
    with tempfile.NamedTemporaryFile("w", suffix=".vpy", delete=False) as f:
        f.write(script)
        path = f.name
    vspipe = Path(sys.executable).parent / "vspipe"
    start = time.perf_counter()
    proc = subprocess.Popen([str(vspipe), "-p", path, "--"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    os.unlink(path)
    if status != 0:
        raise RuntimeError(err)
    frames = int(next(line for line in err.splitlines() if line.startswith("Output")).split()[1])
    return seconds, frames, usage.ru_maxrss / 1024


def cost_split(model_path: str | None, w: int, h: int) -> dict[str, float]:
    """Milliseconds of each part of one interpolated frame at factor 2, measured in-process."""
    from vs_superslomo import Interpolator, load_model
    from vs_superslomo import network as net

    engine = Interpolator(load_model(model_path), device="cpu", threads=os.cpu_count())
    model = engine.model
    a, b = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
    times = {"warp": 0.0}
    original = net.backward_warp

    def timed_warp(*args: object, **kw: object) -> torch.Tensor:
        start = time.perf_counter()
        out = original(*args, **kw)  # type: ignore[arg-type]
        times["warp"] += time.perf_counter() - start
        return out

    with torch.inference_mode():
        engine.interpolate_tensors(a, b, [0.5])  # warm-up
        i0, i1 = engine._prepare(a), engine._prepare(b)
        start = time.perf_counter()
        f01, f10 = model.compute_flows(i0, i1)
        flow = time.perf_counter() - start
        net.backward_warp = timed_warp  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            model.synthesize(i0, i1, f01, f10, torch.tensor([0.5]))
            synth = time.perf_counter() - start
        finally:
            net.backward_warp = original
    return {"flow network": flow * 1000, "interpolation network": (synth - times["warp"]) * 1000,
            "warping": times["warp"] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4, help="source frames per run")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.model:
        env["VS_SUPERSLOMO_MODEL"] = str(Path(args.model).resolve())
    print("| size | factor | ours: frames/s | ours: peak MB | ms per px x 1e6 | mvtools: frames/s | mvtools: peak MB "
          "| ours / mvtools time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    per_frame: dict[tuple[int, int, int], float] = {}
    for w, h in SIZES:
        source = textwrap.dedent(SOURCE.format(w=w, h=h, frames=args.frames))
        for factor in FACTORS:
            ours_s, ours_n, ours_mb = run_vspipe(source + OURS.format(factor=factor), env)
            mv_s, mv_n, mv_mb = run_vspipe(source + MVTOOLS.format(factor=factor), env)
            new_frames = (args.frames - 1) * (factor - 1)
            per_frame[(w, h, factor)] = ours_s / new_frames
            per_px = ours_s / new_frames / (w * h) * 1e9
            print(f"| {w}x{h} | {factor} | {ours_n / ours_s:.2f} | {ours_mb:.0f} | {per_px:.0f} | {mv_n / mv_s:.1f} "
                  f"| {mv_mb:.0f} | {ours_s / mv_s:.0f}x |", flush=True)
    print("\nSeconds per interpolated frame (whole vspipe run / new frames), by factor:")
    for w, h in SIZES:
        row = ", ".join(f"x{f}: {per_frame[(w, h, f)]:.2f}" for f in FACTORS)
        print(f"- {w}x{h}: {row}")
    print("\nCost split of one interpolated frame at factor 2 (ms):")
    print("| size | flow network | interpolation network | warping | colour conversion | VapourSynth and rest |")
    print("|---|---:|---:|---:|---:|---:|")
    for w, h in SIZES:
        split = cost_split(args.model, w, h)
        source = textwrap.dedent(SOURCE.format(w=w, h=h, frames=args.frames))
        conv_s, conv_n, _ = run_vspipe(source + CONVERT_ONLY, env)
        base_s, _, _ = run_vspipe(source + "clip.set_output()\n", env)
        convert = max(0.0, (conv_s - base_s)) / conv_n * 1000 * 2  # two frames in, one out
        total = per_frame[(w, h, 2)] * 1000
        rest = total - sum(split.values()) - convert
        print(f"| {w}x{h} | {split['flow network']:.0f} | {split['interpolation network']:.0f} | "
              f"{split['warping']:.0f} | {convert:.0f} | {rest:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
