"""`make demo` as a new user runs it: a fresh, empty HOME, no virtual environment on the PATH, no
download. The demo runs for real (vspipe | ffmpeg, then the CLI) with the tiny test model so that it
stays fast; its outputs go to a temporary folder, never into the repository."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import vapoursynth as vs
from conftest import VENV_BIN, make_model
from PIL import Image

from vs_superslomo import save_model

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.py"


@pytest.fixture(scope="module")
def narrow_dis_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random width-2 model of the shipped kind (DIS flows): the demo's 250 new frames in ~20 s."""
    path = tmp_path_factory.mktemp("models") / "narrow-dis.safetensors"
    save_model(make_model(width=2, flow="dis"), path, {"note": "random weights for tests"})
    return path


def _fresh_user_env(home: Path, model: Path, out: Path) -> dict[str, str]:
    """The caller's environment as a new user's shell would have it: nothing in HOME, no XDG
    folders, the virtual environment not activated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "VIRTUAL_ENV"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != VENV_BIN.resolve()]
    env.update(HOME=str(home), PATH=os.pathsep.join(path), VS_SUPERSLOMO_MODEL=str(model),
               VS_SUPERSLOMO_DEMO_OUT=str(out))
    return env


def _video(path: Path) -> vs.VideoNode:
    return vs.core.bs.VideoSource(str(path), cachemode=0)


def test_demo_runs_in_a_fresh_home_and_writes_valid_videos(tmp_path: Path, narrow_dis_model: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    res = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=600,
                         env=_fresh_user_env(home, narrow_dis_model, out), preexec_fn=lambda: os.umask(0o027))
    assert res.returncode == 0, res.stderr
    slowmo, fps50, compare = out / "city_slowmo_x4.mp4", out / "city_50fps.mp4", out / "city_compare.png"
    assert res.stdout.split() == [str(slowmo), str(fps50), str(compare)]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (slowmo, fps50, compare))

    source = _video(ROOT / "examples" / "media" / "city_cc0_2s.mkv")
    assert (source.num_frames, source.fps) == (50, 25)
    slow = _video(slowmo)
    assert (slow.num_frames, slow.width, slow.height, slow.fps) == (4 * 50, 720, 404, 25)
    fast = _video(fps50)
    assert (fast.num_frames, fast.width, fast.height, fast.fps) == (2 * 50, 720, 404, 50)
    for clip in (slow, fast):  # decodes to the end: the files are complete
        clip.get_frame(clip.num_frames - 1)
    with Image.open(compare) as picture:
        assert picture.width == 4 * 720 and picture.height >= 404
    # The pipeline's own output keeps the user's umask (the CLI's files are the CLI's business).
    assert stat.S_IMODE(slowmo.stat().st_mode) == 0o640


def test_demo_takes_its_output_folder_as_an_argument(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(DEMO), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--out" in res.stdout and "VS_SUPERSLOMO_DEMO_OUT" in res.stdout


def test_demo_and_examples_import_nothing_from_train() -> None:
    for path in (ROOT / "examples").rglob("*"):
        if path.suffix in (".py", ".vpy"):
            assert "vs_superslomo.train" not in path.read_text(), path
