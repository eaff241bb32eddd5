"""Speed and memory of the filter through vspipe, next to mvtools FlowFPS in the same run.

    python benchmarks/speed.py [--frames 4] [--model M]

For 640x360, 1280x720 and 1920x1080 at factors 2, 4 and 8: output frames per second and peak memory
of `vspipe` running `core.slomo.Interpolate` on a synthetic moving YUV 4:2:0 8-bit clip, the same
for mvtools FlowFPS, and the ratio. Start-up (Python, torch, model loading) is excluded by timing
runs of N and 2N source frames and differencing. Then the cost split of one interpolated frame:
flows (flow network or DIS), interpolation network, warping, colour conversion and VapourSynth overhead (the rest).
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
from vs_superslomo.methods import mvtools_flowfps
mvtools_flowfps(clip, 25 * {factor}).set_output()
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
        stem = model.pair_stem(i0, i1, f01, f10)
        flow = time.perf_counter() - start
        net.backward_warp = timed_warp  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            model.synthesize(i0, i1, f01, f10, torch.tensor([0.5]), stem)
            synth = time.perf_counter() - start
        finally:
            net.backward_warp = original
    # The pair's shared first-layer features are counted with the flows (computed once per pair).
    return {"flows": flow * 1000, "interpolation network": (synth - times["warp"]) * 1000,
            "warping": times["warp"] * 1000}


def marginal(source: str, tail: str, env: dict[str, str], frames: int) -> tuple[float, float, float]:
    """Seconds per output frame and frames per second without start-up (runs of N and 2N source
    frames, differenced), and the larger run's peak resident MB."""
    s1, n1, _ = run_vspipe(textwrap.dedent(source.format(frames=frames)) + tail, env)
    s2, n2, mb = run_vspipe(textwrap.dedent(source.format(frames=2 * frames)) + tail, env)
    per_frame = (s2 - s1) / (n2 - n1)
    return per_frame, 1 / per_frame, mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3, help="source frames of the smaller run (the larger has 2x)")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.model:
        env["VS_SUPERSLOMO_MODEL"] = str(Path(args.model).resolve())
    print("| size | factor | ours: output frames/s | ours: ms / new frame | ours: ns / pixel | ours: peak MB "
          "| mvtools: output frames/s | mvtools: peak MB | ours / mvtools time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_new: dict[tuple[int, int, int], float] = {}
    for w, h in SIZES:
        source = SOURCE.replace("{w}", str(w)).replace("{h}", str(h))
        for factor in FACTORS:
            ours_s, ours_fps, ours_mb = marginal(source, OURS.format(factor=factor), env, args.frames)
            mv_s, mv_fps, mv_mb = marginal(source, MVTOOLS.format(factor=factor), env, args.frames)
            new_s = ours_s * factor / (factor - 1)  # one output frame in `factor` is a source frame
            per_new[(w, h, factor)] = new_s
            print(f"| {w}x{h} | {factor} | {ours_fps:.2f} | {new_s * 1000:.0f} | {new_s / (w * h) * 1e9:.0f} "
                  f"| {ours_mb:.0f} | {mv_fps:.1f} | {mv_mb:.0f} | {ours_s / mv_s:.0f}x |", flush=True)
    print("\nCost per new frame relative to factor 2 (flows shared by a pair's timesteps):")
    for w, h in SIZES:
        row = ", ".join(f"x{f}: {per_new[(w, h, f)] / per_new[(w, h, 2)]:.2f}" for f in FACTORS)
        print(f"- {w}x{h}: {row}")
    print("\nCost split of one new frame at factor 2 (ms):")
    print("| size | flows | interpolation network | warping | colour conversion | VapourSynth and rest |")
    print("|---|---:|---:|---:|---:|---:|")
    for w, h in SIZES:
        split = cost_split(args.model, w, h)
        source = SOURCE.replace("{w}", str(w)).replace("{h}", str(h))
        conv_s, _, _ = marginal(source, CONVERT_ONLY, env, args.frames)
        base_s, _, _ = marginal(source, "clip.set_output()\n", env, args.frames)
        convert = max(0.0, conv_s - base_s) * 1000 * 2  # two frames converted to RGB, one back
        rest = per_new[(w, h, 2)] * 1000 - sum(split.values()) - convert
        print(f"| {w}x{h} | {split['flows']:.0f} | {split['interpolation network']:.0f} | "
              f"{split['warping']:.0f} | {convert:.0f} | {rest:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
