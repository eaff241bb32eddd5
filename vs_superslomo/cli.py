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
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from . import options as option_info
from .atomic_output import (
    PartialOutput,
    check_not_input,
    exit_on_signals,
    interrupted_message,
    real_target,
    temporary_output,
)
from .media import (
    PROG,
    UserError,
    check_first_frame,
    ffmpeg_exe,
    for_y4m,
    is_variable_rate,
    last_frame_duration,
    notice,
    open_video,
    probe_container,
)

CODECS = {"x264": "libx264", "x265": "libx265", "ffv1": "ffv1"}
# The containers each codec is written to (ffmpeg would accept a few more, with surprises).
CONTAINERS = {"x264": (".mp4", ".mkv", ".mov", ".m4v", ".ts"), "x265": (".mp4", ".mkv", ".mov", ".m4v", ".ts"),
              "ffv1": (".mkv", ".avi", ".nut")}
CRF_RANGE = (0, 51)  # x264's and x265's
MIN_RATE, MAX_RATE = 1, 1000
TIME_TOLERANCE = 0.001  # s: frame times are often stored in milliseconds
# Decimal rates people type, mapped to the exact NTSC-family rates they mean.
NTSC_RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.952": Fraction(48000, 1001),
              "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}

__all__ = ["UserError", "main", "parse_rate"]


def parse_rate(text: str) -> Fraction:
    """"60", "60000/1001", "59.94" (-> 60000/1001) or "25.5" as an exact rate from 1 to 1000 fps."""
    try:
        rate = NTSC_RATES.get(text.strip()) or Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise UserError(f"bad frame rate {text!r} (use e.g. 60, 59.94 or 60000/1001)") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UserError(f"bad frame rate {text!r}: it must be from {MIN_RATE} to {MAX_RATE} fps")
    return rate


def parse_seconds(option: str, value: str | float | None) -> float | None:
    """A time option as finite, non-negative seconds (None stays None)."""
    if value is None:
        return None
    try:
        seconds = float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise UserError(f"{option} {value}: not a time in seconds (e.g. 1.5)") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise UserError(f"{option} {value}: the time must be a finite number of seconds, at least 0")
    return seconds


def _check_output(path: Path, suffixes: tuple[str, ...], what: str) -> None:
    """The output's folder exists and is writable, and its extension is one ``what`` is written to."""
    if str(path) == "-":
        raise UserError("-o -: writing to standard output is not supported; give a file name")
    target = real_target(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{path}: the folder {parent} is not writable")
    suffix = target.suffix.lower()
    if suffix not in suffixes:
        given = f"a {suffix} file" if suffix else "a file without an extension"
        raise UserError(f"{path}: {what} cannot be written to {given}; use {', '.join(suffixes)}")


def _check_convert_args(args: argparse.Namespace) -> Fraction | None:
    """The target rate (or None), after refusing contradictory or out-of-range options."""
    if args.factor is not None and args.fps is not None:
        raise UserError("give --factor or --fps, not both")
    if args.slowmo and args.fps is not None:
        raise UserError("--slowmo takes --factor (how many times slower), not --fps")
    if args.audio == "stretch" and not args.slowmo:
        raise UserError("--audio stretch needs --slowmo (without it the duration and the audio stay as they are)")
    if args.factor is not None and args.factor < 1:
        raise UserError(f"--factor must be at least 1, got {args.factor}")
    if not CRF_RANGE[0] <= args.crf <= CRF_RANGE[1]:
        raise UserError(f"--crf {args.crf}: it must be from {CRF_RANGE[0]} to {CRF_RANGE[1]}")
    args.start = parse_seconds("--start", args.start)
    args.end = parse_seconds("--end", args.end)
    return parse_rate(args.fps) if args.fps is not None else None


@dataclass(frozen=True)
class Selection:
    """The frames to interpolate, and where they and the audio sit in the source's timeline."""

    clip: Any
    video_offset: float  # seconds from the output's start to its first frame (keeps an A/V offset)
    audio_seek: float  # where the audio is cut, seconds after the file's start
    duration: float  # of the selected frames, seconds
    starts: list[Fraction] | None  # variable frame rate: each selected frame's start time and the end


def _select(clip: Any, times: list[Fraction], file_start: float, args: argparse.Namespace) -> Selection:
    """Frames from --start to --end, chosen by their real times; the audio is cut at the same instants."""
    rate = Fraction(clip.fps_num, clip.fps_den)
    relative = [float(t) - file_start - TIME_TOLERANCE for t in times]
    first = 0 if args.start is None else bisect_left(relative, args.start)  # the first frame at or after --start
    last = clip.num_frames if args.end is None else bisect_left(relative, args.end)  # frames before --end
    if not 0 <= first < last:
        raise UserError(f"--start/--end select no frames (the video has {clip.num_frames / rate:.2f} s)")
    frame_time = float(times[first]) - file_start
    if args.start is None:  # the whole file: the video keeps its delay after the audio
        seek, offset = 0.0, max(0.0, frame_time)
    else:  # cut: both start at the first selected frame
        seek, offset = max(0.0, frame_time), 0.0
    if not is_variable_rate(times, rate):
        return Selection(clip[first:last], offset, seek, float((last - first) / rate), None)
    end = times[last] if last < len(times) else times[-1] + last_frame_duration(clip)
    starts = [*times[first:last], end]
    return Selection(clip[first:last], offset, seek, float(end - times[first]), starts)


def _interpolate(clip: Any, rate: Fraction | None, sel: Selection, args: argparse.Namespace) -> tuple[Any, Fraction]:
    """The interpolated clip and how much slower it plays than the source (1: same speed).

    Variable-frame-rate input is interpolated at every frame's real time (a timecodes file for the filter);
    a factor then multiplies its average rate.
    """
    import vapoursynth as vs

    factor = args.factor or (4 if args.slowmo else 2)
    source_rate = Fraction(clip.fps_num, clip.fps_den)
    if rate is None and not args.slowmo and source_rate * factor > MAX_RATE:
        raise UserError(f"--factor {factor} gives {float(source_rate * factor):.6g} fps; at most {MAX_RATE} "
                        f"are supported (use --fps, or --slowmo for slow motion)")
    target = rate or source_rate * factor
    options = {"model": args.model, "device": args.device, "flow_scale": args.flow_scale, "sc": not args.no_sc,
               "dis_preset": args.dis_preset, "dedup": args.dedup, "dedup_threshold": args.dedup_threshold,
               "threads": args.threads, "quadratic": not args.no_quadratic, "fallback": not args.no_fallback,
               "refine": not args.no_refine}
    if rate is not None or sel.starts is not None:
        options.update(fps_num=target.numerator, fps_den=target.denominator)
    else:
        options["factor"] = factor
    try:
        out = _filtered(clip, sel.starts, options)
    except vs.Error as e:
        raise UserError(str(e)) from None
    if not args.slowmo:
        return out, Fraction(1)
    return vs.core.std.AssumeFPS(out, fpsnum=clip.fps_num, fpsden=clip.fps_den), Fraction(factor)


def _filtered(clip: Any, starts: list[Fraction] | None, options: dict[str, Any]) -> Any:
    """The filter on the clip; with ``starts``, through a timecodes file (read when the filter is created)."""
    from .filter import interpolate

    if starts is None:
        return interpolate(clip, **options)
    with tempfile.TemporaryDirectory(prefix="vs-superslomo-") as folder:
        timecodes = Path(folder) / "timecodes.txt"
        timecodes.write_text("# timecode format v2\n" + "".join(f"{_milliseconds(t)}\n" for t in starts))
        return interpolate(clip, timecodes=str(timecodes), **options)


def _milliseconds(seconds: Fraction) -> str:
    """Exact decimal milliseconds where they exist (timecodes from a file are decimal), else 9 places."""
    ms = seconds * 1000
    return str(ms.numerator) if ms.denominator == 1 else f"{float(ms):.9f}"


def _audio_mode(has_audio: bool, args: argparse.Namespace) -> str:
    if not has_audio:
        return "none"
    if not args.slowmo:
        return "keep"
    if args.audio == "stretch":
        return "stretch"
    notice("slow motion: audio dropped (use --audio stretch to slow it down, pitch kept)")
    return "none"


def _encoder_command(args: argparse.Namespace, output: Path, audio: str, sel: Selection, slowdown: Fraction,
                     color_tags: str, joined: Path | None = None) -> list[str]:
    """ffmpeg encoding y4m from stdin, or with ``joined`` (an ffconcat list of encoded segments) copying them."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    if sel.video_offset > 0:
        cmd += ["-itsoffset", f"{sel.video_offset * float(slowdown):.6f}"]
    cmd += ["-f", "yuv4mpegpipe", "-i", "-"] if joined is None else ["-f", "concat", "-safe", "0", "-i", str(joined)]
    if audio != "none":
        # The audio ends where the video does (the output's time of the last frame's end).
        if sel.audio_seek > 0:  # even "-ss 0" makes ffmpeg drop the video's -itsoffset
            cmd += ["-ss", f"{sel.audio_seek:.6f}"]
        cmd += ["-t", f"{sel.video_offset + sel.duration:.6f}", "-i", str(args.input),
                "-map", "0:v:0", "-map", "1:a:0?"]
    codec = CODECS[args.codec] if joined is None else "copy"
    if color_tags and joined is None:
        cmd += ["-filter:v", color_tags]
    cmd += ["-c:v", codec]
    if codec in ("libx264", "libx265"):
        cmd += ["-crf", str(args.crf), "-preset", args.preset]
    if audio == "stretch":
        length = (sel.video_offset + sel.duration) * float(slowdown)
        # atempo's output runs a little short of length; pad it with silence, then cut it exactly.
        cmd += ["-filter:a", f"{_atempo_chain(1 / slowdown)},apad=whole_dur={length:.6f},atrim=duration={length:.6f}"]
    if audio != "none":
        cmd += ["-c:a", "aac", "-b:a", "192k"]
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


class _PlainProgress:
    """Progress for logs (stderr not a terminal): a plain line every 10%, never a carriage return."""

    def __init__(self, total: int) -> None:
        self.total, self.reported, self.started = max(total, 1), 0, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        tenth = 10 * done // self.total
        if tenth > self.reported:
            self.reported = tenth
            print(f"{PROG}: interpolating: {10 * tenth}% ({done}/{self.total} frames, "
                  f"{time.monotonic() - self.started:.0f} s)", file=sys.stderr, flush=True)


def _write_y4m(clip: Any, stream: IO[bytes], quiet: bool) -> None:
    from tqdm import tqdm

    if quiet or not sys.stderr.isatty():
        # a callback even when quiet: Python runs signal handlers between frames only when it runs code
        clip.output(stream, y4m=True, progress_update=(lambda done, total: None) if quiet
                    else _PlainProgress(clip.num_frames))
        return
    with tqdm(total=clip.num_frames, unit="frame", file=sys.stderr, dynamic_ncols=True, desc="interpolating") as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        clip.output(stream, y4m=True, progress_update=progress)


def _encode(out: Any, command: list[str], partial: PartialOutput, quiet: bool) -> None:
    """Stream ``out`` as y4m into the encoder; the signal handler of ``partial`` can stop it at any time."""
    # Its own process group: a signal sent to ours (Ctrl-C, `timeout`) reaches only us, and our handler
    # stops it; killed first, it left clip.output writing into a dead pipe with the handler never run.
    partial.encoder = encoder = subprocess.Popen(command, stdin=subprocess.PIPE, process_group=0)
    assert encoder.stdin is not None
    try:
        _write_y4m(out, encoder.stdin, quiet)
        encoder.stdin.close()
    except BrokenPipeError:  # what the encoder wrote is incomplete: never rename it
        raise UserError("the encoder (ffmpeg) stopped before all frames were written; "
                        "see its message above") from None
    if encoder.wait() != 0:
        raise UserError("the encoder (ffmpeg) failed; see its message above")


@dataclass(frozen=True)
class Conversion:
    """The graph the CLI encodes and what its encoder needs besides; vs_superslomo.render_worker builds the
    same one from the same arguments for a range of output frames."""

    args: argparse.Namespace
    out: Any
    selection: Selection
    slowdown: Fraction
    audio: str
    color_tags: str

    def encoder_command(self, output: Path, segment: bool = False, joined: Path | None = None) -> list[str]:
        """The whole output; a ``segment`` of it (video only, no offset); or the output from ``joined`` segments."""
        if segment:
            return _encoder_command(self.args, output, "none", replace(self.selection, video_offset=0.0),
                                    self.slowdown, self.color_tags)
        return _encoder_command(self.args, output, self.audio, self.selection, self.slowdown, self.color_tags, joined)


def prepare(args: argparse.Namespace) -> Conversion:
    """Checks the options and the input and builds the graph (the output is not touched)."""
    rate = _check_convert_args(args)
    _check_output(args.output, CONTAINERS[args.codec], args.codec)
    check_not_input(args.input, args.output)
    clip, times = open_video(args.input, getattr(args, "index", None))  # render workers share one index
    container = probe_container(args.input)
    clip = check_first_frame(args.input, clip, container)
    selection = _select(clip, times, container.start, args)
    out, slowdown = _interpolate(selection.clip, rate, selection, args)
    audio = _audio_mode(container.has_audio, args)
    out, color_tags = for_y4m(out)
    if out.format.color_family != selection.clip.format.color_family:
        notice("note: RGB input is written as YUV 4:4:4 (BT.709), which keeps its full colour resolution")
    return Conversion(args, out, selection, slowdown, audio, color_tags)


def run_convert(args: argparse.Namespace) -> int:
    job = prepare(args)
    if args.workers is not None or args.ray is not None or args.resume:  # ranges in workers or Ray tasks
        from .render import render

        render(job)
    else:
        with temporary_output(args.output) as partial:
            _encode(job.out, job.encoder_command(partial.file), partial, args.quiet)
    if not args.quiet:
        notice(f"wrote {args.output} ({job.out.num_frames} frames at {job.out.fps_num}/{job.out.fps_den} fps)")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    import numpy as np
    import vapoursynth as vs
    from PIL import Image, ImageDraw

    from .filter import interpolate

    at = parse_seconds("--at", args.at)
    _check_output(args.output, (".png",), "the comparison")
    check_not_input(args.input, args.output)
    clip, _ = open_video(args.input)
    clip = check_first_frame(args.input, clip, probe_container(args.input))
    index = int(Fraction(at or 0) * Fraction(clip.fps_num, clip.fps_den))
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
    with temporary_output(args.output) as partial:
        canvas.save(partial.file, format="PNG")
    notice(f"wrote {args.output}")
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
    p.add_argument("--model", help="model file or shipped model name, e.g. two-network (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--flow-scale", type=float, default=option_info.default("flow_scale"),
                   choices=option_info.choices("flow_scale"), help=option_info.help_text("flow_scale"))
    p.add_argument("--dis-preset", choices=option_info.choices("dis_preset"), help=option_info.help_text("dis_preset"))
    p.add_argument("--codec", choices=list(CODECS), default="x264")
    p.add_argument("--crf", type=int, default=18, help="quality for x264/x265 (lower is better, default 18)")
    p.add_argument("--preset", default="medium", help="x264/x265 preset (default medium)")
    p.add_argument("--no-sc", action="store_true", help="do not detect scene cuts")
    for name in ("quadratic", "fallback", "refine"):  # the filter's switches that are on by default
        p.add_argument(f"--no-{name}", action="store_true",
                       help=f"the filter's {name}=False (default True: {option_info.help_text(name)})")
    p.add_argument("--dedup", action="store_true", help=option_info.help_text("dedup"))
    p.add_argument("--dedup-threshold", type=float, default=option_info.default("dedup_threshold"),
                   help=option_info.help_text("dedup_threshold"))
    p.add_argument("--start", type=float, help="start time in seconds")
    p.add_argument("--end", type=float, help="end time in seconds")
    p.add_argument("--threads", type=int, help="CPU threads for each frame's network evaluation (default 1: one "
                   "frame per CPU at once). Another count may change a rare pixel by one step")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    render = p.add_argument_group("rendering in ranges (segments joined without re-encoding; see the README)")
    render.add_argument("--workers", type=int, help="render ranges of output frames in N local processes")
    render.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                        help="render the ranges as tasks on a Ray cluster (default address: auto)")
    render.add_argument("--resume", action="store_true", help="continue an interrupted --workers/--ray render")
    render.add_argument("--segment-seconds", type=float, default=30.0, help="output seconds per range (default 30)")
    return p


def convert_args(argv: list[str]) -> argparse.Namespace:
    """The convert command's arguments (render workers parse the CLI's own command line with it)."""
    return _parser().parse_args(argv)


def _compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} compare",
                                description="A side-by-side picture: the two source frames around --at, frame "
                                            "blending and our interpolation at the midpoint.")
    p.add_argument("input", type=Path, help="video file")
    p.add_argument("--at", required=True, help="time in seconds")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .png")
    p.add_argument("--model", help="model file or shipped model name, e.g. two-network (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        # Signals exit at once with one line from start-up on: a KeyboardInterrupt raised inside
        # safetensors' loader came out as a ValueError traceback.
        with exit_on_signals(PartialOutput()):
            if argv[:1] == ["compare"]:
                return run_compare(_compare_parser().parse_args(argv[1:]))
            return run_convert(convert_args(argv))
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_message(signal.SIGINT), file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        print(f"{PROG}: error: the encoder stopped early", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
