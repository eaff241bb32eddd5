"""The one options object: every entry point derives its names, defaults, choices and checks from it."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import pytest
import vapoursynth as vs

from vs_superslomo import options
from vs_superslomo.options import OptionError, Options


def test_the_plugin_registers_exactly_the_options() -> None:
    assert vs.core.slomo.Interpolate.signature == "clip:vnode;" + options.plugin_signature()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"flow_scale": 0.3}, "flow_scale must be one of 1.0, 0.5, 0.25"), ({"threads": 0}, "threads must be at least 1"),
     ({"dis_preset": "slow"}, "dis_preset must be one of ultrafast, fast, medium"),
     ({"sc": 1}, "sc must be a bool"), ({"sc_threshold": "0.1"}, "sc_threshold must be a number"),
     ({"device": None}, "device cannot be None"), ({"factor": 2.0}, "factor must be an integer"),
     ({"fps_den": 2}, "fps_den needs fps_num"), ({"speed": 2}, "unknown argument speed")],
)
def test_bad_options_are_refused_when_created(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        Options.from_kwargs(kwargs)


def test_the_output_rate() -> None:
    source = Fraction(24000, 1001)
    assert Options().output_fps(source) == 2 * source
    assert Options(factor=3).output_fps(source) == 3 * source
    assert Options(fps_num=60000, fps_den=1001).output_fps(source) == Fraction(60000, 1001)
    assert Options(fps_num=50).output_fps(source) == 50


def test_plugin_maps_arrive_as_python_values() -> None:
    converted = options.from_plugin_map({"sc": 0, "fp16": 1, "dis_preset": b"fast", "model": b"/m.safetensors",
                                         "threads": 2})
    assert converted == {"sc": False, "fp16": True, "dis_preset": "fast", "model": "/m.safetensors", "threads": 2}


@pytest.mark.parametrize("command", [["vs_superslomo"], ["vs_superslomo.evaluate"]])
def test_command_line_choices_come_from_the_options(command: list[str]) -> None:
    res = subprocess.run([sys.executable, "-m", *command, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "{ultrafast,fast,medium}" in text and "{1.0,0.5,0.25}" in text
    assert " ".join(options.help_text("flow_scale").split()[:6]) in text
