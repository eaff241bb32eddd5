"""CuPy next to torch: the CUDA module says which package to install when CuPy is missing or built
for another CUDA major than torch. These checks need no GPU; the transfers themselves are run by
`make gpu-check` on a CUDA machine."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from vs_superslomo.cuda_io import check_cupy, cupy_package, cupy_problem, installed_cupy

ROOT = Path(__file__).resolve().parent.parent


def _torch_major() -> int:
    if torch.version.cuda is None:
        pytest.skip("this torch is a CPU-only build")
    return int(torch.version.cuda.split(".")[0])


def test_the_cuda_extra_pins_the_cupy_of_torchs_cuda_major() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cuda"]
    names = [req.split(">")[0].split("=")[0].split("<")[0].strip() for req in extra]
    assert names == [cupy_package(_torch_major())], extra


def test_cupy_in_this_environment_is_usable_or_named_in_the_error() -> None:
    major = _torch_major()
    if installed_cupy().keys() == {cupy_package(major)}:
        check_cupy()  # the one matching CuPy imports
        return
    with pytest.raises(ImportError) as error:
        check_cupy()
    assert f"pip install {cupy_package(major)}" in str(error.value)


def test_missing_cupy_names_the_package_and_torchs_cuda_version() -> None:
    message = cupy_problem("13.0", {})
    assert message is not None
    assert "pip install cupy-cuda13x" in message and "CUDA 13.0" in message


def test_a_cupy_for_another_cuda_major_is_refused_with_both_majors() -> None:
    message = cupy_problem("13.0", {"cupy-cuda12x": "14.2.0"})
    assert message is not None
    assert "cupy-cuda12x is built for CUDA 12" in message and "CUDA 13.0" in message
    assert "pip uninstall cupy-cuda12x && pip install cupy-cuda13x" in message
    old = cupy_problem("12.8", {"cupy-cuda102": "8.0.0"})
    assert old is not None and "built for CUDA 10," in old and "pip install cupy-cuda12x" in old


def test_the_matching_cupy_passes() -> None:
    assert cupy_problem("13.0", {"cupy-cuda13x": "14.2.0"}) is None
    assert cupy_problem("12.4", {"cupy-cuda12x": "13.6.0"}) is None


def test_two_cupy_packages_and_a_cpu_only_torch_are_explained() -> None:
    both = cupy_problem("13.0", {"cupy-cuda12x": "14.2.0", "cupy-cuda13x": "14.2.0"})
    assert both is not None and "pip uninstall cupy-cuda12x cupy-cuda13x" in both
    cpu = cupy_problem(None, {})
    assert cpu is not None and "CPU-only" in cpu


GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real check instead")
def test_gpu_check_without_a_device_says_skipped_and_exits_0() -> None:
    res = subprocess.run([sys.executable, str(GPU_CHECK)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no CUDA device: skipped" in res.stdout


def test_gpu_check_harness_compares_vspipe_frames(tiny_dis_model_path: Path) -> None:
    """The same harness with the CPU as the device under test: vspipe runs, frames read back, compared."""
    res = subprocess.run([sys.executable, str(GPU_CHECK), "--device", "cpu", "--size", "160x90", "--cpu-frames", "4",
                          "--no-tests"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "VS_SUPERSLOMO_MODEL": str(tiny_dis_model_path)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "fp32: 100 output frames" in res.stdout
    assert "4 frames against the CPU: source frames identical" in res.stdout
    assert res.stdout.rstrip().endswith("gpu-check: passed")
