"""How the filter reads a clip as float RGB and writes it back: VapourSynth's resize with the clip's
own colour props, and the usual defaults where they are missing."""

from __future__ import annotations

from dataclasses import dataclass

import vapoursynth as vs

core = vs.core

RANGE_LIMITED, RANGE_FULL = 0, 1  # resize's range_in/range numbering, and R81's _Range prop


@dataclass(frozen=True)
class ColorSpec:
    """How to read the clip's values as RGB; from its first frame's props, with defaults."""

    matrix: int
    transfer: int
    primaries: int
    range: int
    chromaloc: int

    @classmethod
    def of(cls, clip: vs.VideoNode, props: vs.FrameProps) -> ColorSpec:
        """Missing or unspecified colour props get the usual defaults (BT.709 for HD, BT.601 for SD)."""
        is_rgb = clip.format.color_family == vs.RGB
        hd = clip.width > 1024 or clip.height > 576

        def prop(name: str, unspecified: tuple[int, ...], default: int) -> int:
            value = props.get(name)
            return default if not isinstance(value, int) or value in unspecified else value

        return cls(
            matrix=0 if is_rgb else prop("_Matrix", (2,), 1 if hd else 6),
            transfer=prop("_Transfer", (0, 2, 3), 1),
            primaries=prop("_Primaries", (0, 2, 3), 1 if hd else 6),
            range=_range(props, is_rgb),
            chromaloc=prop("_ChromaLocation", (), 0),
        )


def _range(props: vs.FrameProps, is_rgb: bool) -> int:
    """The clip's range in resize's numbering (R81's ``_Range``: 0 limited, 1 full).

    Earlier API4 cores wrote ``_ColorRange`` the other way round (0 full, 1 limited). Untagged YUV and
    grey are limited range, as nearly all video is; untagged RGB is full range.
    """
    value = props.get("_Range")
    if isinstance(value, int) and value in (RANGE_LIMITED, RANGE_FULL):
        return int(value)
    old = props.get("_ColorRange")
    if isinstance(old, int) and old in (0, 1):
        return RANGE_FULL if old == 0 else RANGE_LIMITED
    return RANGE_FULL if is_rgb else RANGE_LIMITED


def to_rgb(clip: vs.VideoNode, color: ColorSpec) -> vs.VideoNode:
    """The clip as full-range RGB, grey repeated into the three planes: 16-bit for integer sources, 32-bit float
    in [0, 1] for float ones. 16 bits round by 1/131070 at most, below the last bit of any integer source, and
    halve the memory of every RGB frame VapourSynth holds for the filter (at 1920x1080, 12 MB instead of 25;
    five source frames per interpolated frame, and those in its caches)."""
    integer = clip.format.sample_type == vs.INTEGER
    if clip.format.color_family == vs.GRAY:
        grey = core.resize.Point(clip, format=vs.GRAY16 if integer else vs.GRAYS, range_in=color.range,
                                 range=RANGE_FULL)
        return core.std.ShufflePlanes([grey, grey, grey], [0, 0, 0], vs.RGB)
    return core.resize.Bicubic(
        clip, format=vs.RGB48 if integer else vs.RGBS, matrix_in=color.matrix, transfer_in=color.transfer,
        transfer=color.transfer, primaries_in=color.primaries, primaries=color.primaries, range_in=color.range,
        range=RANGE_FULL, chromaloc_in=color.chromaloc,
    )


def from_rgb(rgb: vs.VideoNode, fmt: vs.VideoFormat, color: ColorSpec) -> vs.VideoNode:
    """Full-range RGB (float or 16-bit) back to ``fmt`` with the clip's colour props (grey takes the green
    plane)."""
    if fmt.color_family == vs.GRAY:
        grey = core.std.ShufflePlanes(rgb, 1, vs.GRAY)
        return core.resize.Point(grey, format=fmt.id, range_in=RANGE_FULL, range=color.range)
    return core.resize.Bicubic(
        rgb, format=fmt.id, matrix=color.matrix if fmt.color_family == vs.YUV else None,
        transfer_in=color.transfer, transfer=color.transfer, primaries_in=color.primaries,
        primaries=color.primaries, range_in=RANGE_FULL, range=color.range,
        chromaloc=color.chromaloc if fmt.color_family == vs.YUV else None,
    )


def analysis_grey(rgb: vs.VideoNode, width: int, height: int) -> vs.VideoNode:
    """The green plane of an RGB clip from :func:`to_rgb`, downscaled, as float in [0, 1] (what scene-cut
    and duplicate detection measure, whichever RGB the clip is)."""
    green = core.std.ShufflePlanes(rgb, 1, vs.GRAY)
    return core.resize.Bilinear(green, width, height, format=vs.GRAYS, range_in=RANGE_FULL)
