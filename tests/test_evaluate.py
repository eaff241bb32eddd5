"""The evaluator: frames dropped from a real sequence, scored for our model, blending and mvtools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from vs_superslomo.methods import CLASSICAL_NAME, UNREFINED_NAME


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
