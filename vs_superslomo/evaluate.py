"""Drop frames, interpolate them back, and score: our model next to frame blending, the classical DIS
baseline and mvtools FlowFPS (``vs_superslomo.methods``).

    python -m vs_superslomo.evaluate clip.mp4 frames_dir/ --factor 2 4
    python -m vs_superslomo.evaluate --validation --factor 2 4     # the model card's table
    python -m vs_superslomo.evaluate --synthetic --factor 2 4      # the fixed synthetic set
    python -m vs_superslomo.evaluate --validation --factor 8 --timing   # and when the truth really is

For each clip, windows of factor + 1 consecutive frames are taken (``--step 2``: every 2nd frame, as if the
clip had half its frame rate); the first and last are the inputs and the frames between them are the
ground truth. PSNR and SSIM (scikit-image) are computed on 8-bit
RGB, per clip and on average over clips.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import options as option_info
from .checkpoint import ModelFileError, load_model
from .frame_files import IMAGE_SUFFIXES, decode_stills, decode_video
from .methods import OFF_TIME, Method, Score, Timing, ValidationItem, peer_methods, score_method, timing_of
from .train.dataset import real_validation, synthetic_validation, windows


def load_clip_frames(path: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames from a video file or a folder of images."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"error: no images in {path}")
        return decode_stills(files)
    if not path.exists():
        raise SystemExit(f"error: {path}: no such file")
    return decode_video(path)


def file_items(path: Path, factor: int, count: int, step: int = 1) -> list[ValidationItem]:
    frames = load_clip_frames(path)
    if len(frames) < factor * step + 1:
        raise SystemExit(f"error: {path} has {len(frames)} frames, factor {factor} with step {step} needs at least "
                         f"{factor * step + 1}")
    return windows(path.name, frames, factor, count, distinct=True, step=step)


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


def format_timing(factor: int, timing: dict[str, Timing], by_method: dict[str, dict[str, Score]]) -> str:
    lines = [f"\nfactor {factor}: where the ground truth sits in time along ours' path\n",
             f"| clip | frames | mean offset (gaps) | off by > {OFF_TIME} | dB at the truth's time "
             "| ours - blend (dB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for clip, t in timing.items():
        gain = by_method["ours"][clip].psnr - by_method["blend"][clip].psnr
        cells = [f"{t.frames}", f"{t.mean_offset:.3f}", f"{t.off_share:.0%}", f"{t.gain_db:+.2f}", f"{gain:+.2f}"]
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", type=Path, help="video files or folders of frames")
    parser.add_argument("--validation", action="store_true", help="the held-out validation clips (make data)")
    parser.add_argument("--synthetic", action="store_true",
                        help="the fixed synthetic validation scenes (held-out photos, large motion)")
    parser.add_argument("--factor", type=int, nargs="+", default=[2, 4], choices=[2, 4, 8])
    parser.add_argument("--model",
                        help="model file or shipped model name, e.g. two-network (default: the shipped model)")
    parser.add_argument("--flow-scale", type=float, default=option_info.default("flow_scale"),
                        choices=option_info.choices("flow_scale"), help=option_info.help_text("flow_scale"))
    parser.add_argument("--dis-preset", choices=option_info.choices("dis_preset"),
                        help=option_info.help_text("dis_preset"))
    parser.add_argument("--windows", type=int, default=12, help="windows per clip (default 12)")
    parser.add_argument("--step", type=_positive, default=1,
                        help="take every STEP-th frame: a clip at 1/STEP of its frame rate (default 1)")
    parser.add_argument("--no-mvtools", action="store_true", help="skip the mvtools comparison")
    parser.add_argument("--json", type=Path, help="also write the scores as JSON")
    parser.add_argument("--timing", action="store_true",
                        help="also show how far each clip's ground truth sits from its nominal time along ours' path "
                             "(footage whose motion within the gap is uneven: no method can place those frames)")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _items(args: argparse.Namespace, factor: int) -> list[ValidationItem]:
    items = real_validation(factor, args.windows, args.step) if args.validation else []
    if args.synthetic:
        items += synthetic_validation(factor)
    for path in args.inputs:
        items += file_items(path, factor, args.windows, args.step)
    return items


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.inputs and not args.validation and not args.synthetic:
        parser.error("give video files or folders, or --validation / --synthetic")
    try:
        model = load_model(args.model)
        methods: dict[str, Method] = peer_methods(model, mvtools=not args.no_mvtools, dis_preset=args.dis_preset,
                                                  flow_scale=args.flow_scale)
    except (ModelFileError, ValueError, RuntimeError) as e:  # e.g. a DIS preset for a flow-network model
        print(f"error: {e}", file=sys.stderr)
        return 1
    results: dict[int, dict[str, dict[str, Score]]] = {}
    timings: list[str] = []
    for factor in args.factor:
        items = _items(args, factor)
        with torch.inference_mode():
            results[factor] = {name: score_method(method, items) for name, method in methods.items()}
            if args.timing:
                timings.append(format_timing(factor, timing_of(methods["ours"], items), results[factor]))
    print(format_table(results))
    if timings:
        print("\n".join(timings))
    if args.json:
        args.json.write_text(json.dumps(
            {str(f): {m: {c: vars(s) for c, s in by_clip.items()} for m, by_clip in r.items()}
             for f, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
