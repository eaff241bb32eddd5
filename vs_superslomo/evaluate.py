"""Drop frames, interpolate them back, and score: our model next to frame blending and mvtools FlowFPS.

    python -m vs_superslomo.evaluate clip.mp4 frames_dir/ --factor 2 4
    python -m vs_superslomo.evaluate --validation --factor 2 4     # the model card's table
    python -m vs_superslomo.evaluate --synthetic --factor 2 4      # the fixed synthetic set

For each clip, windows of factor + 1 consecutive frames are taken; the first and last are the inputs
and the frames between them are the ground truth. PSNR and SSIM (scikit-image) are computed on 8-bit
RGB, per clip and on average over clips.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .checkpoint import ModelFileError, load_model
from .network import DIS_PRESETS
from .train.dataset import ValidationItem, real_validation, synthetic_validation
from .train.validate import Method, Score, blend_method, model_method, score_method

MVTOOLS_SETTINGS = "pel 2, block 16 overlap 8 refined to block 8 overlap 4, truemotion"


def mvtools_method() -> Method:
    """mvtools FlowFPS (vapoursynth-mvtools) on each window, in YUV 4:4:4 16-bit to avoid rounding."""
    import vapoursynth as vs

    core = vs.core
    if not hasattr(core, "mv"):
        raise SystemExit("error: mvtools is not installed (pip install vapoursynth-mvtools)")

    def run(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float]) -> list[Tensor]:
        factor = round(1 / timesteps[0])
        if any(abs(t - (k + 1) / factor) > 1e-6 for k, t in enumerate(timesteps)):
            raise ValueError("mvtools needs evenly spaced timesteps k / factor")
        planes = [frame0.numpy(), frame1.numpy()]
        h, w = planes[0].shape[1:]
        base = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=2, fpsnum=1, fpsden=1)

        def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
            out = f.copy()
            for p in range(3):
                np.copyto(np.asarray(out[p]), planes[n][p])
            return out

        rgb = core.std.ModifyFrame(base, base, fill)
        yuv = core.resize.Bicubic(rgb, format=vs.YUV444P16, matrix_s="709")
        sup = core.mv.Super(yuv, pel=2, hpad=16, vpad=16)
        vectors = []
        for backward in (True, False):
            v = core.mv.Analyse(sup, isb=backward, blksize=16, overlap=8, truemotion=True)
            vectors.append(core.mv.Recalculate(sup, v, blksize=8, overlap=4, truemotion=True))
        flow = core.mv.FlowFPS(yuv, sup, vectors[0], vectors[1], num=factor, den=1)
        back = core.resize.Bicubic(flow, format=vs.RGBS, matrix_in_s="709")
        frames = []
        for k in range(1, factor):
            f = back.get_frame(k)
            frames.append(torch.from_numpy(np.stack([np.asarray(f[p]) for p in range(3)]).copy()).clamp(0, 1))
        return frames

    return run


def load_clip_frames(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames from a video file or a folder of images."""
    from .train.sources import _decode_stills, _decode_video

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".pgm", ".ppm",
                                                                         ".bmp", ".tif", ".tiff"))
        if not files:
            raise SystemExit(f"error: no images in {path}")
        return _decode_stills(files)
    if not path.exists():
        raise SystemExit(f"error: {path}: no such file")
    return _decode_video(path)


def file_items(path: Path, factor: int, windows: int) -> list[ValidationItem]:
    frames = load_clip_frames(path)
    if len(frames) < factor + 1:
        raise SystemExit(f"error: {path} has {len(frames)} frames, factor {factor} needs at least {factor + 1}")
    firsts = np.unique(np.linspace(0, len(frames) - factor - 1, windows).round().astype(int))
    items = []
    for first in firsts:
        f = [torch.from_numpy(np.array(frames[first + j])).permute(2, 0, 1).float() / 255 for j in range(factor + 1)]
        items.append(ValidationItem(path.name, f[0], f[-1], f[1:-1], [j / factor for j in range(1, factor)]))
    return items


def format_table(results: dict[int, dict[str, dict[str, Score]]]) -> str:
    lines = []
    for factor, by_method in results.items():
        methods = list(by_method)
        clips = list(next(iter(by_method.values())))
        lines.append(f"\nfactor {factor} (PSNR dB / SSIM)\n")
        lines.append("| clip | frames | " + " | ".join(methods) + " |")
        lines.append("|---|---:|" + "---:|" * len(methods))
        for clip in clips:
            first = by_method[methods[0]][clip]
            cells = [f"{by_method[m][clip].psnr:.2f} / {by_method[m][clip].ssim:.4f}" for m in methods]
            name = f"**{clip}**" if clip == "mean" else clip
            lines.append(f"| {name} | {first.frames} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", type=Path, help="video files or folders of frames")
    parser.add_argument("--validation", action="store_true", help="the held-out validation clips (make data)")
    parser.add_argument("--synthetic", action="store_true",
                        help="the fixed synthetic validation scenes (held-out photos, large motion)")
    parser.add_argument("--factor", type=int, nargs="+", default=[2, 4], choices=[2, 4, 8])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--flow-scale", type=float, default=1.0, choices=[1.0, 0.5, 0.25])
    parser.add_argument("--dis-preset", choices=DIS_PRESETS, help="DIS preset for DIS-flow models (default medium)")
    parser.add_argument("--windows", type=int, default=12, help="windows per clip (default 12)")
    parser.add_argument("--no-mvtools", action="store_true", help="skip the mvtools comparison")
    parser.add_argument("--json", type=Path, help="also write the scores as JSON")
    args = parser.parse_args(argv)
    if not args.inputs and not args.validation and not args.synthetic:
        parser.error("give video files or folders, or --validation / --synthetic")
    try:
        model = load_model(args.model)
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        ours = model_method(model, args.flow_scale, args.dis_preset)
    except ValueError as e:  # e.g. a DIS preset for a model with a flow network
        print(f"error: {e}", file=sys.stderr)
        return 1
    methods: dict[str, Method] = {"ours": ours, "blend": blend_method}
    if not args.no_mvtools:
        methods["mvtools"] = mvtools_method()
    results: dict[int, dict[str, dict[str, Score]]] = {}
    for factor in args.factor:
        items = real_validation(factor, args.windows) if args.validation else []
        if args.synthetic:
            items += synthetic_validation(factor)
        for path in args.inputs:
            items += file_items(path, factor, args.windows)
        with torch.inference_mode():
            results[factor] = {name: score_method(method, items) for name, method in methods.items()}
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(
            {str(f): {m: {c: vars(s) for c, s in by_clip.items()} for m, by_clip in r.items()}
             for f, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
