"""What the CLI learns about an input file before interpolating it, and how its frames reach ffmpeg.

Frame times come from bestsource's own index (its ``timecodes`` file, written while it indexes the
file anyway), so checking the frame rate costs no extra pass over the video. Container and stream
facts come from ``ffmpeg -i`` (imageio-ffmpeg ships no ffprobe).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

PROG = "vs-superslomo"

# VapourSynth/ITU-T H.273 codes -> ffmpeg's names, for tagging the output (y4m carries no colour info).
MATRIX_NAMES = {1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}
PRIMARIES_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020"}
TRANSFER_NAMES = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
                  13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
RGB_TO_YUV_MATRIX = 1  # BT.709: what players assume for tagged modern video


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


def notice(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class Container:
    """What ``ffmpeg -i`` says about a file: its start time, audio, and the video's coded size."""

    start: float
    has_audio: bool
    video_size: tuple[int, int] | None


def probe_container(path: Path) -> Container:
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                         errors="replace")
    streams = [line for line in res.stderr.splitlines() if "Stream #" in line]
    start = re.search(r"Duration: .*?, start: (-?[0-9.]+)", res.stderr)
    size = next((re.search(r", (\d+)x(\d+)\b", line) for line in streams if "Video:" in line), None)
    return Container(start=float(start.group(1)) if start else 0.0,
                     has_audio=any("Audio:" in line for line in streams),
                     video_size=(int(size.group(1)), int(size.group(2))) if size else None)


def open_video(path: Path, index: Path | None = None) -> tuple[Any, list[Fraction]]:
    """The input's video (bestsource) and every frame's presentation time in seconds, exactly as stored.

    ``index``: keep bestsource's index of the file at this path (``.N.bsindex`` appended) and reuse it.
    """
    import vapoursynth as vs

    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable")
    with tempfile.TemporaryDirectory(prefix="vs-superslomo-") as folder:
        timecodes = Path(folder) / "timecodes.txt"
        try:
            cache: dict[str, Any] = {"cachemode": 0} if index is None else {"cachemode": 4, "cachepath": str(index)}
            clip = vs.core.bs.VideoSource(source=str(path), timecodes=str(timecodes), **cache)
        except vs.Error as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
            raise UserError(f"{path}: cannot read a video stream ({reason})") from None
        lines = timecodes.read_text().splitlines() if timecodes.exists() else []
    times = [Fraction(line) / 1000 for line in lines if line and not line.startswith("#")]
    if clip.fps_num == 0 or len(times) != clip.num_frames:
        raise UserError(f"{path}: cannot read the video's frame times")
    return clip, times


def is_variable_rate(times: list[Fraction], rate: Fraction) -> bool:
    """Whether frames would be shown more than half a frame away from their real time at ``rate``.

    bestsource reports a variable-rate file's average rate, so the rate alone never reveals it.
    Small jitter (phones, millisecond time bases) stays well inside half a frame: such a file is
    timed as constant-rate.
    """
    if len(times) < 2:
        return False
    period = 1 / rate
    drift = max(abs(t - times[0] - i * period) for i, t in enumerate(times))
    return drift > period / 2


def last_frame_duration(clip: Any) -> Fraction:
    """How long the clip's last frame lasts: its own duration props, or the average rate's period."""
    with clip.get_frame(clip.num_frames - 1) as frame:
        num, den = frame.props.get("_DurationNum"), frame.props.get("_DurationDen")
    if isinstance(num, int) and isinstance(den, int) and num > 0 and den > 0:
        return Fraction(num, den)
    return Fraction(clip.fps_den, clip.fps_num)


def check_first_frame(path: Path, clip: Any, container: Container) -> Any:
    """Refuse interlaced video, note an odd size lost to 4:2:0, drop alpha: returns the clip to use."""
    import vapoursynth as vs

    with clip.get_frame(0) as frame:
        props = dict(frame.props)
    if props.get("_FieldBased") in (1, 2):
        raise UserError(f"{path}: the video is interlaced, and interpolating its fields would comb every frame; "
                        "deinterlace it first, e.g. ffmpeg -i IN -vf bwdif=mode=send_field -c:a copy OUT.mkv")
    size = container.video_size
    if size and size != (clip.width, clip.height) and size[0] <= clip.width + 1 and size[1] <= clip.height + 1:
        notice(f"note: {path} is {size[0]}x{size[1]}; its subsampled chroma needs even sizes, so it is decoded "
               f"and written as {clip.width}x{clip.height} (the last odd column/row is dropped)")
    if "_Alpha" in props:
        notice(f"note: {path} has an alpha channel; it is dropped (the output has no transparency)")
        clip = vs.core.std.RemoveFrameProps(clip, props=["_Alpha"])
    return clip


def for_y4m(clip: Any) -> tuple[Any, str]:
    """The clip in a format y4m can carry (YUV or GRAY, integer), and the ffmpeg filter tagging its colours.

    RGB becomes YUV 4:4:4 (BT.709, limited range) at the same bit depth: all our codecs take 4:4:4,
    so no colour resolution is lost.
    """
    import vapoursynth as vs

    fmt = clip.format
    bits = 16 if fmt.sample_type == vs.FLOAT else fmt.bits_per_sample
    if fmt.color_family == vs.RGB:
        target = vs.core.query_video_format(vs.YUV, vs.INTEGER, bits, 0, 0)
        clip = vs.core.resize.Bicubic(clip, format=target.id, matrix=RGB_TO_YUV_MATRIX, range=0)
    elif fmt.sample_type == vs.FLOAT:
        target = vs.core.query_video_format(fmt.color_family, vs.INTEGER, bits, fmt.subsampling_w, fmt.subsampling_h)
        clip = vs.core.resize.Point(clip, format=target.id)
    with clip.get_frame(0) as frame:
        return clip, color_tags(dict(frame.props))


def color_tags(props: dict[str, Any]) -> str:
    """An ffmpeg ``setparams`` filter tagging the colours the frames' props declare ("" if none are).

    A filter, not the ``-colorspace`` output options: those make ffmpeg convert the (untagged) y4m
    frames into the named colour space instead of just labelling them.
    """
    tags: list[str] = []
    for option, prop, names in (("colorspace", "_Matrix", MATRIX_NAMES),
                                ("color_primaries", "_Primaries", PRIMARIES_NAMES),
                                ("color_trc", "_Transfer", TRANSFER_NAMES)):
        value = props.get(prop)
        name = names.get(value) if isinstance(value, int) else None
        if name:
            tags.append(f"{option}={name}")
    # R81's _Range says 0 = limited, 1 = full; the older _ColorRange said the opposite.
    if "_Range" in props or "_ColorRange" in props:
        full = props["_Range"] == 1 if "_Range" in props else props["_ColorRange"] == 0
        tags.append(f"range={'pc' if full else 'tv'}")
    return "setparams=" + ":".join(tags) if tags else ""
