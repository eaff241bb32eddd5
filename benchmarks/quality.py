"""Quality and speed of every method users might pick, on the same frames, in one run.

    python benchmarks/quality.py [--windows 6] [--model M]      (needs `make data` for the clips)

On the held-out validation clips (../shared/DATA.md) at factors 2 and 4, each method gets the same two
input frames of a window and must produce the frames between them. Prints PSNR, SSIM and interpolated
frames per second, and writes benchmarks/results/quality.md, quality.png (PSNR against speed) and
hard_crop.png (the hardest crop, every method side by side).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from vs_superslomo import load_model
from vs_superslomo.methods import Method, Score, ValidationItem, model_method, peer_methods, repeat_method, score_method
from vs_superslomo.train.dataset import real_validation

RESULTS = Path(__file__).resolve().parent / "results"


class Timed:
    """Wraps a method and measures its wall time per produced frame."""

    def __init__(self, method: Method) -> None:
        self.method = method
        self.seconds = 0.0
        self.frames = 0

    def __call__(self, frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
                 after: Tensor | None = None) -> Sequence[Tensor]:
        start = time.perf_counter()
        out = self.method(frame0, frame1, timesteps, before, after)
        self.seconds += time.perf_counter() - start
        self.frames += len(timesteps)
        return out

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


def hardest_crop(items: list[ValidationItem], methods: dict[str, Method], size: int = 160) -> None:
    from PIL import Image, ImageDraw

    def blend_error(item: ValidationItem) -> float:
        return float(((item.frame0 + item.frame1) / 2 - item.targets[0]).abs().mean())

    item = max(items, key=blend_error)
    err = ((item.frame0 + item.frame1) / 2 - item.targets[0]).abs().mean(0)
    pooled = torch.nn.functional.avg_pool2d(err[None, None], size, stride=16)[0, 0]
    y, x = divmod(int(pooled.argmax()), pooled.shape[1])
    y, x = y * 16, x * 16
    inputs = (item.frame0, item.frame1, item.timesteps, item.before, item.after)
    panels = [("truth", item.targets[0])] + [(name, m(*inputs)[0]) for name, m in methods.items()]
    canvas = Image.new("RGB", (size * len(panels), size + 20), "black")
    draw = ImageDraw.Draw(canvas)
    for k, (name, frame) in enumerate(panels):
        crop = (frame[:, y : y + size, x : x + size].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        canvas.paste(Image.fromarray(crop), (k * size, 20))
        draw.text((k * size + 4, 4), name, fill="white")
    canvas.save(RESULTS / "hard_crop.png")
    print(f"hardest crop: {item.name}, at ({x}, {y})", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=6, help="windows per clip and factor")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    model = load_model(args.model)
    factories: dict[str, Method] = {"repeat": repeat_method, **peer_methods(model, minterpolate=True),
                                    "ours fs0.5": model_method(model, 0.5)}
    rows: list[tuple[int, str, Score, float]] = []
    for factor in (2, 4):
        items = real_validation(factor, args.windows)
        for name, method in factories.items():
            timed = Timed(method)
            with torch.inference_mode():
                score = score_method(timed, items)["mean"]
            rows.append((factor, name, score, timed.fps))
            print(f"x{factor} {name:13s} PSNR {score.psnr:6.2f}  SSIM {score.ssim:.4f}  {timed.fps:7.1f} frames/s",
                  file=sys.stderr, flush=True)
        if factor == 2:
            with torch.inference_mode():
                hardest_crop(items, {k: v for k, v in factories.items() if k != "repeat"})
    lines = ["| factor | method | PSNR (dB) | SSIM | interpolated frames / s |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {f} | {n} | {s.psnr:.2f} | {s.ssim:.4f} | {fps:.1f} |" for f, n, s, fps in rows]
    table = "\n".join(lines)
    (RESULTS / "quality.md").write_text(table + "\n")
    print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for factor, marker in ((2, "o"), (4, "s")):
        pts = [(fps, s.psnr, n) for f, n, s, fps in rows if f == factor]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=f"factor {factor}")
        for fps, psnr, name in pts:
            ax.annotate(name, (fps, psnr), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("interpolated frames per second (2 CPU cores, log scale)")
    ax.set_ylabel("PSNR on held-out clips (dB)")
    ax.set_title("Quality against speed, same frames for every method")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "quality.png", dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
