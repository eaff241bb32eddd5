"""The evaluator: frames dropped from a real sequence, scored for our model, blending and mvtools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from torch import Tensor

from vs_superslomo.methods import (
    CLASSICAL_NAME,
    TIMING_STEPS,
    UNREFINED_NAME,
    ValidationItem,
    classical_method,
    timing_of,
    truth_times,
)
from vs_superslomo.network import backward_warp


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vs_superslomo.evaluate", *args], capture_output=True, text=True,
                          timeout=600, env=os.environ.copy())


@pytest.fixture(scope="module")
def panning_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pan")
    photo = skdata.astronaut()
    for k in range(9):
        Image.fromarray(photo[120:248, 40 + 3 * k:232 + 3 * k]).save(folder / f"{k:03d}.png")
    return folder


def test_a_pan_scores_motion_compensation_above_blending(panning_frames: Path, tiny_dis_model_path: Path,
                                                        tmp_path: Path) -> None:
    report = tmp_path / "scores.json"
    run = evaluate(str(panning_frames), "--factor", "2", "--windows", "3", "--model", str(tiny_dis_model_path),
                   "--dis-preset", "fast", "--json", str(report))
    assert run.returncode == 0, run.stderr
    assert "| **mean** | 3 |" in run.stdout
    scores = json.loads(report.read_text())["2"]
    assert set(scores) == {"ours", UNREFINED_NAME, "blend", "mvtools", CLASSICAL_NAME}
    # the tiny model's U-Net has random weights: without it the frames, and so the scores, differ
    assert scores["ours"]["mean"]["psnr"] != scores[UNREFINED_NAME]["mean"]["psnr"]
    assert scores["mvtools"]["mean"]["psnr"] > scores["blend"]["mean"]["psnr"] + 3  # 3 px a frame: blending ghosts
    assert scores[CLASSICAL_NAME]["mean"]["psnr"] > scores["blend"]["mean"]["psnr"] + 3
    assert np.isfinite(scores["ours"]["mean"]["psnr"]) and 0 < scores["ours"]["mean"]["ssim"] <= 1


def test_the_dis_preset_is_refused_for_a_flow_network_model(panning_frames: Path, tiny_model_path: Path) -> None:
    run = evaluate(str(panning_frames), "--factor", "2", "--model", str(tiny_model_path), "--dis-preset", "fast")
    assert run.returncode == 1 and "only to models with DIS flows" in run.stderr and "Traceback" not in run.stderr


def _pan_item(positions: list[float]) -> ValidationItem:
    """A 12-px pan of a photo between two inputs, whose ground-truth frames show it at ``positions`` (0: as
    frame0, 1: as frame1), nominally at even times."""
    photo = torch.from_numpy(skdata.astronaut()[100:260, 40:300].copy()).permute(2, 0, 1).float() / 255

    def at(p: float) -> Tensor:
        return backward_warp(photo[None], torch.tensor([12.0 * p, 0.0]).view(1, 2, 1, 1).expand(1, 2, 160, 260))[0]

    steps = len(positions) + 1
    return ValidationItem("pan", at(0), at(1), [at(p) for p in positions], [k / steps for k in range(1, steps)])


def test_truth_times_find_where_each_frame_really_is() -> None:
    classical = classical_method()
    even = _pan_item([0.25, 0.5, 0.75])
    found = truth_times(classical, even)
    assert [t.found for t in found] == pytest.approx([0.25, 0.5, 0.75], abs=1.5 / TIMING_STEPS)
    assert [t.nominal for t in found] == [0.25, 0.5, 0.75] and all(0 <= t.gain_db < 0.5 for t in found)
    # a camera that holds still for most of the gap, then jumps
    held = truth_times(classical, _pan_item([0.0, 0.0, 0.9]))
    assert [t.found for t in held] == pytest.approx([0.0, 0.0, 0.9], abs=3 / TIMING_STEPS)
    assert held[1].gain_db > 5  # the pan half a gap away from where the truth is: ~6 px of a detailed photo
    timing = timing_of(classical, [even, _pan_item([0.0, 0.0, 0.9])])["pan"]
    assert timing.frames == 6 and timing.off_share == pytest.approx(1 / 6)  # held: 0.5 -> 0, the one off by > 1/4
    assert 0.1 < timing.mean_offset < 0.2 and timing.gain_db > 1


def test_the_timing_table_is_printed_on_request(panning_frames: Path, tiny_dis_model_path: Path) -> None:
    run = evaluate(str(panning_frames), "--factor", "2", "--windows", "2", "--model", str(tiny_dis_model_path),
                   "--dis-preset", "fast", "--no-mvtools", "--timing")
    assert run.returncode == 0, run.stderr
    timing = run.stdout.split("where the ground truth sits in time")[1].splitlines()
    rows = [line.split("|")[1:-1] for line in timing if line.startswith(f"| {panning_frames.name} |")]
    assert len(rows) == 1 and rows[0][1].strip() == "2"  # two windows of one new frame each
    assert 0 <= float(rows[0][2]) < 0.5 and rows[0][3].strip().endswith("%") and float(rows[0][4]) >= 0
