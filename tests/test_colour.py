"""Colour: interpolated frames keep the source's levels (R81's _Range numbering, defaults by family)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from vs_superslomo import interpolate
from vs_superslomo.colour import RANGE_FULL, RANGE_LIMITED, ColorSpec

core = vs.core


@pytest.mark.parametrize(
    ("fmt", "color", "props"),
    [(vs.RGB24, [255, 128, 0], {}),  # RGB is full range: white stays 255 (it became 235)
     (vs.RGB48, [65535, 0, 30000], {}),
     (vs.YUV420P8, [235, 128, 128], {}),  # untagged YUV is limited range
     (vs.YUV420P8, [16, 128, 128], {}),
     (vs.YUV444P8, [255, 128, 128], {"_Range": RANGE_FULL}),
     (vs.YUV444P8, [255, 128, 128], {"_ColorRange": 0})],  # the older prop: 0 means full
)
def test_flat_frames_keep_their_levels(tiny_model_path: Path, fmt: int, color: list[int],
                                       props: dict[str, int]) -> None:
    clip = core.std.BlankClip(format=fmt, color=color, length=3, width=64, height=48)
    if props:
        clip = core.std.SetFrameProps(clip, **props)
    frame = interpolate(clip, factor=2, model=tiny_model_path, sc=False).get_frame(1)
    assert frame.props["SloMoTime"] == 0.5
    for p in range(frame.format.num_planes):
        assert int(np.asarray(frame[p])[10, 10]) == color[p], (p, color)


def test_range_defaults_and_props() -> None:
    rgb = core.std.BlankClip(format=vs.RGB24)
    yuv = core.std.BlankClip(format=vs.YUV420P8)
    with rgb.get_frame(0) as f:
        assert ColorSpec.of(rgb, f.props).range == RANGE_FULL
    with yuv.get_frame(0) as f:
        assert ColorSpec.of(yuv, f.props).range == RANGE_LIMITED
    for props, expected in [({"_Range": RANGE_FULL}, RANGE_FULL), ({"_ColorRange": 1}, RANGE_LIMITED),
                            ({"_ColorRange": 0}, RANGE_FULL)]:
        with core.std.SetFrameProps(yuv, **props).get_frame(0) as f:
            assert ColorSpec.of(yuv, f.props).range == expected, props
