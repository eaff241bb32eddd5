"""`make gpu-check`: the CUDA path in one command, for whoever has a CUDA machine.

1. the CUDA tests (``pytest -m cuda``);
2. the demo clip scaled to 1920x1080, factor 2, through ``vspipe`` on the GPU (CuPy transfers),
   half precision (the CUDA default) and full precision, timed;
3. the first output frames of both next to the CPU path's: source frames must be identical,
   interpolated frames close (PSNR of the luma plane, largest difference, 8-bit steps).

Under 5 minutes on a machine that has torch and CuPy (the CPU reference is the slow part: ~3 s per
new 1080p frame on 2 cores, so it covers only ``--cpu-frames`` output frames).

Without a CUDA device it prints "no CUDA device: skipped" and exits 0; a CUDA device with a missing
or mismatched CuPy is an error (exit 1), with the package to install. ``--device cpu`` runs the same
harness with the CPU as the device under test (checks the harness itself on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.vpy"
CLIP = ROOT / "examples" / "media" / "city_cc0_2s.mkv"
BIN = Path(sys.executable).parent
# Pass marks for interpolated frames, GPU against CPU (8-bit luma). Source frames must be identical.
MIN_PSNR = {"fp32": 45.0, "fp16": 35.0}


def log(message: str) -> None:
    print(message, flush=True)


def _env() -> dict[str, str]:
    # vspipe configures VSScript from the PATH in a fresh home (see examples/demo.py).
    return {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}


def run_vspipe(device: str, fp16: bool, width: int, height: int, frames: int | None,
               out: Path) -> tuple[float, float | None]:
    """Writes raw frames to ``out``; returns (wall seconds, vspipe's own frames per second)."""
    cmd = [str(BIN / "vspipe"), "--arg", f"src={CLIP}", "--arg", f"device={device}", "--arg", f"fp16={int(fp16)}",
           "--arg", f"width={width}", "--arg", f"height={height}"]
    if frames is not None:
        cmd += ["--end", str(frames - 1)]
    started = time.monotonic()
    res = subprocess.run([*cmd, str(SCRIPT), str(out)], capture_output=True, text=True, env=_env())
    wall = time.monotonic() - started
    if res.returncode != 0:
        raise RuntimeError(f"vspipe ({device}, fp16={fp16}) failed with exit status {res.returncode}:\n"
                           f"{res.stderr.strip()}")
    match = re.search(r"Output \d+ frames in [\d.]+ seconds \(([\d.]+) fps\)", res.stderr)
    return wall, float(match.group(1)) if match else None


def read_luma(path: Path, width: int, height: int) -> np.ndarray:
    """Y planes of a raw YUV 4:2:0 8-bit file, (frames, height, width)."""
    data = np.fromfile(path, np.uint8)
    size = width * height * 3 // 2
    frames = data.reshape(-1, size)
    return frames[:, : width * height].reshape(-1, height, width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def compare(name: str, dut: np.ndarray, cpu: np.ndarray) -> bool:
    """Frame by frame: even output frames are source frames (identical), odd ones interpolated."""
    n = min(len(dut), len(cpu))
    source_same = all(np.array_equal(dut[i], cpu[i]) for i in range(0, n, 2))
    scores = [psnr(dut[i], cpu[i]) for i in range(1, n, 2)]
    worst = max(int(np.abs(dut[i].astype(np.int16) - cpu[i].astype(np.int16)).max()) for i in range(1, n, 2))
    ok = source_same and min(scores) >= MIN_PSNR[name]
    log(f"  {name}: {n} frames against the CPU: source frames {'identical' if source_same else 'DIFFER'}; "
        f"interpolated luma PSNR min {min(scores):.1f} dB, mean {np.mean(scores):.1f} dB "
        f"(pass >= {MIN_PSNR[name]:.0f}), largest difference {worst} steps: {'ok' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="device under test (default cuda)")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--cpu-frames", type=int, default=8, help="output frames compared with the CPU (default 8)")
    parser.add_argument("--no-tests", action="store_true", help="skip pytest -m cuda")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    cuda = args.device.startswith("cuda")

    log(f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
    if cuda and not torch.cuda.is_available():
        log("no CUDA device: skipped (torch.cuda.is_available() is False; nothing was run)")
        return 0
    if cuda:
        from vs_superslomo.cuda_io import check_cupy

        try:
            cupy = check_cupy()
        except ImportError as e:
            log(f"error: {e}")
            return 1
        log(f"device: {torch.cuda.get_device_name(torch.device(args.device))}, CuPy {cupy.__version__}")

    ok = True
    if not args.no_tests:
        log("1. the CUDA tests: pytest -m cuda")
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda"], cwd=ROOT / "tests", env=_env())
        ok &= res.returncode == 0

    log(f"2. {width}x{height}, factor 2, {CLIP.name} scaled, through vspipe on {args.device}")
    precisions = {"fp16": True, "fp32": False} if cuda else {"fp32": False}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, fp16 in precisions.items():
            wall, fps = run_vspipe(args.device, fp16, width, height, None, tmp / "full.raw")
            frames = len(read_luma(tmp / "full.raw", width, height))
            (tmp / "full.raw").unlink()
            log(f"  {name}: {frames} output frames in {wall:.1f} s with start-up"
                + (f", {fps:.2f} frames/s in vspipe's count" if fps else ""))

        log(f"3. the first {args.cpu_frames} output frames against the CPU path")
        wall, _ = run_vspipe("cpu", False, width, height, args.cpu_frames, tmp / "cpu.raw")
        log(f"  cpu: {args.cpu_frames} output frames in {wall:.1f} s with start-up")
        cpu = read_luma(tmp / "cpu.raw", width, height)
        for name, fp16 in precisions.items():
            run_vspipe(args.device, fp16, width, height, args.cpu_frames, tmp / f"{name}.raw")
            ok &= compare(name, read_luma(tmp / f"{name}.raw", width, height), cpu)

    log("gpu-check: passed" if ok else "gpu-check: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
