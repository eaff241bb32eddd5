"""One command from a video file to smooth slow motion or a higher frame rate.

    vs-superslomo INPUT -o OUTPUT --fps 60               higher frame rate, same duration
    vs-superslomo INPUT -o OUTPUT --factor 2             twice the frame rate, same duration
    vs-superslomo INPUT -o OUTPUT --slowmo --factor 4    4x the frames at the source rate: 4x slower
    vs-superslomo compare INPUT --at 1.5 -o compare.png  source frames, blending and ours side by side

Decoding uses bestsource (exact frames from any container), encoding ffmpeg (imageio-ffmpeg).
The output is written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from . import options as option_info

PROG = "vs-superslomo"
CODECS = {"x264": "libx264", "x265": "libx265", "ffv1": "ffv1"}
# Decimal rates people type, mapped to the exact NTSC-family rates they mean.
NTSC_RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.952": Fraction(48000, 1001),
              "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


def parse_rate(text: str) -> Fraction:
    """"60", "60000/1001", "59.94" (-> 60000/1001) or "25.5" as an exact positive rate."""
    try:
        rate = NTSC_RATES.get(text.strip()) or Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise UserError(f"bad frame rate {text!r} (use e.g. 60, 59.94 or 60000/1001)") from None
    if rate <= 0 or rate > 1000:
        raise UserError(f"bad frame rate {text!r}: it must be above 0 and at most 1000")
    return rate


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def open_source(path: Path) -> Any:
    """The input's video as a VapourSynth clip (bestsource), or a UserError saying why not."""
    import vapoursynth as vs

    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable")
    try:
        clip = vs.core.bs.VideoSource(source=str(path), cachemode=0)
    except vs.Error as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise UserError(f"{path}: cannot read a video stream ({reason})") from None
    if clip.fps_num == 0:
        raise UserError(f"{path}: variable frame rate video is not supported yet")
    return clip


def _has_audio(path: Path) -> bool:
    res = subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return any("Audio:" in line for line in res.stderr.splitlines() if "Stream #" in line)


def _check_output(path: Path, codec: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{path}: the folder {parent} is not writable")
    if codec == "ffv1" and path.suffix.lower() not in (".mkv", ".avi", ".nut"):
        raise UserError(f"{path}: ffv1 needs a .mkv output")


@contextmanager
def _temporary_output(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target``, renamed onto it only if the block completes."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    except OSError as e:
        raise UserError(f"{target}: cannot write in {target.parent} ({e.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _encoder_command(args: argparse.Namespace, output: Path, audio: str, rate_ratio: Fraction) -> list[str]:
    cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "yuv4mpegpipe", "-i", "-"]
    if audio != "none":
        if args.start is not None:
            cmd += ["-ss", str(args.start)]
        if args.end is not None:
            cmd += ["-to", str(args.end)]
        cmd += ["-i", str(args.input), "-map", "0:v:0", "-map", "1:a:0?"]
    codec = CODECS[args.codec]
    cmd += ["-c:v", codec]
    if codec in ("libx264", "libx265"):
        cmd += ["-crf", str(args.crf), "-preset", args.preset]
    if audio == "keep":
        cmd += ["-c:a", "aac", "-b:a", "192k", "-shortest"]
    elif audio == "stretch":
        cmd += ["-filter:a", _atempo_chain(rate_ratio), "-c:a", "aac", "-b:a", "192k"]
    cmd += [str(output)]
    return cmd


def _atempo_chain(speed: Fraction) -> str:
    """atempo filters whose product is ``speed`` (each stage limited to 0.5..2), pitch kept."""
    stages = []
    remaining = float(speed)
    while remaining < 0.5:
        stages.append(0.5)
        remaining /= 0.5
    stages.append(remaining)
    return ",".join(f"atempo={s:.6f}" for s in stages)


INTERRUPTED = f"{PROG}: interrupted; no output written"


def _abort_handler(encoder: subprocess.Popen[bytes], tmp: Path) -> Any:
    """Ctrl-C during the encode: stop the encoder, remove the partial file and exit at once.

    Exiting from the handler avoids unwinding a KeyboardInterrupt through ``clip.output``, which once
    surfaced as a BrokenPipeError with the encoder still alive and waiting on its input.
    """

    def abort(signum: int, frame: Any) -> None:
        encoder.kill()
        encoder.wait()
        tmp.unlink(missing_ok=True)
        print(INTERRUPTED, file=sys.stderr, flush=True)
        os._exit(128 + signal.SIGINT)

    return abort


def _write_y4m(clip: Any, stream: IO[bytes], quiet: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=clip.num_frames, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True,
              desc="interpolating") as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        clip.output(stream, y4m=True, progress_update=progress)


def _selected_range(clip: Any, start: float | None, end: float | None) -> Any:
    """The frames between --start and --end."""
    if start is None and end is None:
        return clip
    src_rate = Fraction(clip.fps_num, clip.fps_den)
    first = round((start or 0) * src_rate)
    last = clip.num_frames if end is None else min(clip.num_frames, round(end * src_rate))
    if not 0 <= first < last:
        raise UserError(f"--start/--end select no frames (the video has {clip.num_frames / src_rate:.2f} s)")
    return clip[first:last]


def run_convert(args: argparse.Namespace) -> int:
    import vapoursynth as vs

    from .filter import interpolate

    if args.factor is not None and args.fps is not None:
        raise UserError("give --factor or --fps, not both")
    if args.slowmo and args.fps is not None:
        raise UserError("--slowmo takes --factor (how many times slower), not --fps")
    if args.factor is not None and args.factor < 1:
        raise UserError(f"--factor must be at least 1, got {args.factor}")
    rate = parse_rate(args.fps) if args.fps is not None else None
    output: Path = args.output
    _check_output(output, args.codec)
    clip = _selected_range(open_source(args.input), args.start, args.end)
    factor = args.factor or (4 if args.slowmo else None)
    options = {"model": args.model, "device": args.device, "flow_scale": args.flow_scale, "sc": not args.no_sc,
               "dis_preset": args.dis_preset}
    try:
        if rate is not None:
            out = interpolate(clip, fps_num=rate.numerator, fps_den=rate.denominator, **options)
        else:
            out = interpolate(clip, factor=factor or 2, **options)
    except vs.Error as e:
        raise UserError(str(e)) from None
    speed = Fraction(1)
    if args.slowmo:
        out = vs.core.std.AssumeFPS(out, fpsnum=clip.fps_num, fpsden=clip.fps_den)
        speed = Fraction(1, factor or 4)
    audio = "none"
    if _has_audio(args.input):
        if not args.slowmo:
            audio = "keep"
        elif args.audio == "stretch":
            audio = "stretch"
        else:
            print(f"{PROG}: slow motion: audio dropped (use --audio stretch to slow it down, pitch kept)",
                  file=sys.stderr)
    with _temporary_output(output) as tmp:
        encoder = subprocess.Popen(_encoder_command(args, tmp, audio, speed), stdin=subprocess.PIPE)
        assert encoder.stdin is not None
        previous = signal.signal(signal.SIGINT, _abort_handler(encoder, tmp))
        try:
            _write_y4m(out, encoder.stdin, args.quiet)
            encoder.stdin.close()
        except BaseException as e:
            encoder.kill()
            encoder.wait()
            if isinstance(e, BrokenPipeError):  # what the encoder wrote is incomplete: never rename it
                raise UserError("the encoder (ffmpeg) stopped before all frames were written; "
                                "see its message above") from None
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
        if encoder.wait() != 0:
            raise UserError("the encoder (ffmpeg) failed; see its message above")
    if not args.quiet:
        print(f"{PROG}: wrote {output} ({out.num_frames} frames at {out.fps_num}/{out.fps_den} fps)", file=sys.stderr)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    import numpy as np
    import vapoursynth as vs
    from PIL import Image, ImageDraw

    from .filter import interpolate

    if args.output.suffix.lower() != ".png":
        raise UserError(f"{args.output}: the comparison is written as .png")
    _check_output(args.output, "x264")
    clip = open_source(args.input)
    index = int(Fraction(args.at) * Fraction(clip.fps_num, clip.fps_den))
    if not 0 <= index < clip.num_frames - 1:
        raise UserError(f"--at {args.at}: the video has {clip.num_frames} frames "
                        f"({clip.num_frames * clip.fps_den / clip.fps_num:.2f} s)")
    pair = clip[index : index + 2]
    try:
        ours = interpolate(pair, factor=2, model=args.model, device=args.device, sc=False)[1]
    except vs.Error as e:
        raise UserError(str(e)) from None
    blend = vs.core.std.Merge(pair[0], pair[1], 0.5)

    def rgb(node: vs.VideoNode) -> np.ndarray:
        args_ = {"matrix_in_s": "709"} if node.format.color_family == vs.YUV else {}
        frame = vs.core.resize.Bicubic(node, format=vs.RGB24, **args_).get_frame(0)
        return np.dstack([np.asarray(frame[p]) for p in range(3)])

    panels = [("frame A", rgb(pair[0])), ("blending", rgb(blend)), ("vs-superslomo", rgb(ours)),
              ("frame B", rgb(pair[1]))]
    h, w = panels[0][1].shape[:2]
    canvas = Image.new("RGB", (w * len(panels), h + 24), "black")
    draw = ImageDraw.Draw(canvas)
    for k, (label, img) in enumerate(panels):
        canvas.paste(Image.fromarray(img), (k * w, 24))
        draw.text((k * w + 6, 5), label, fill="white")
    with _temporary_output(args.output) as tmp:
        canvas.save(tmp, format="PNG")
    print(f"{PROG}: wrote {args.output}", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="video file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output video file (.mp4, .mkv, ...)")
    p.add_argument("--factor", type=int, help="frame rate multiplier (default 2; with --slowmo: 4)")
    p.add_argument("--fps", help="target frame rate instead of --factor: 60, 59.94, 60000/1001 ...")
    p.add_argument("--slowmo", action="store_true", help="slow motion: the new frames play at the source rate")
    p.add_argument("--audio", choices=["drop", "stretch"], default="drop",
                   help="slow motion only: drop the audio (default) or slow it down with pitch kept")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--flow-scale", type=float, default=option_info.default("flow_scale"),
                   choices=option_info.choices("flow_scale"), help=option_info.help_text("flow_scale"))
    p.add_argument("--dis-preset", choices=option_info.choices("dis_preset"), help=option_info.help_text("dis_preset"))
    p.add_argument("--codec", choices=list(CODECS), default="x264")
    p.add_argument("--crf", type=int, default=18, help="quality for x264/x265 (lower is better, default 18)")
    p.add_argument("--preset", default="medium", help="x264/x265 preset (default medium)")
    p.add_argument("--no-sc", action="store_true", help="do not detect scene cuts")
    p.add_argument("--start", type=float, help="start time in seconds")
    p.add_argument("--end", type=float, help="end time in seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} compare",
                                description="A side-by-side picture: the two source frames around --at, frame "
                                            "blending and our interpolation at the midpoint.")
    p.add_argument("input", type=Path, help="video file")
    p.add_argument("--at", required=True, help="time in seconds")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .png")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["compare"]:
            return run_compare(_compare_parser().parse_args(argv[1:]))
        return run_convert(_parser().parse_args(argv))
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        print(f"{PROG}: error: the encoder stopped early", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
