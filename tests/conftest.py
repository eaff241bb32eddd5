"""Shared fixtures: small real models written to disk, and helpers to run vspipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vs_superslomo import ModelConfig, SuperSloMo, save_model

VENV_BIN = Path(sys.executable).parent


def make_model(width: int = 4, seed: int = 0, **config: object) -> SuperSloMo:
    torch.manual_seed(seed)
    return SuperSloMo(ModelConfig(width=width, **config)).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_model(make_model(), path, {"note": "random weights for tests"})
    return path


@pytest.fixture(scope="session")
def tiny_dis_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random model of the shipped kind: DIS flows, no flow U-Net."""
    path = tmp_path_factory.mktemp("models") / "tiny-dis.safetensors"
    save_model(make_model(flow="dis"), path, {"note": "random weights for tests"})
    return path


def run_vspipe(
    args: list[str], timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(VENV_BIN / "vspipe"), *args], capture_output=True, timeout=timeout, env=full_env)
