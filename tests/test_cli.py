"""The one-command CLI, run as a real subprocess on real encoded video files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import vapoursynth as vs

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    return path


def cli(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vs_superslomo", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})}, **kw)  # type: ignore[call-overload]


def probe(path: Path) -> tuple[int, vs.VideoNode, bool]:
    """Frame count and rate from bestsource, and whether ffmpeg's demuxer sees an audio stream."""
    clip = vs.core.bs.VideoSource(source=str(path), cachemode=0)
    res = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    has_audio = any("Audio:" in line for line in res.stderr.splitlines() if "Stream #" in line)
    return clip.num_frames, clip, has_audio


@pytest.fixture(scope="module")
def model_env(tiny_model_path: Path) -> dict[str, str]:
    return {"VS_SUPERSLOMO_MODEL": str(tiny_model_path)}


def test_frame_rate_mode_keeps_duration_and_audio(clip_with_audio: Path, tmp_path: Path,
                                                  model_env: dict[str, str]) -> None:
    out = tmp_path / "fps.mp4"
    res = cli(str(clip_with_audio), "-o", str(out), "--fps", "25", "--quiet", env=model_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    frames, clip, has_audio = probe(out)
    assert (clip.fps_num, clip.fps_den) == (25, 1)
    assert frames == 50  # 2 s at 25 fps
    assert has_audio


def test_slow_motion_mode_is_factor_times_longer(clip_with_audio: Path, tmp_path: Path,
                                                 model_env: dict[str, str]) -> None:
    out = tmp_path / "slow.mkv"
    res = cli(str(clip_with_audio), "-o", str(out), "--slowmo", "--factor", "4", env=model_env)
    assert res.returncode == 0, res.stderr
    assert "audio dropped" in res.stderr
    frames, clip, has_audio = probe(out)
    assert frames == 80 and (clip.fps_num, clip.fps_den) == (10, 1)  # 8 s: 4x longer
    assert not has_audio


def test_slow_motion_can_stretch_the_audio(clip_with_audio: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    out = tmp_path / "slow_audio.mp4"
    res = cli(str(clip_with_audio), "-o", str(out), "--slowmo", "--factor", "2", "--audio", "stretch", "-q",
              env=model_env)
    assert res.returncode == 0, res.stderr
    _, _, has_audio = probe(out)
    assert has_audio
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Duration: 00:00:04" in info


@pytest.mark.parametrize(
    ("args", "message"),
    [(["/nonexistent/clip.mp4", "-o", "{tmp}/x.mp4"], "no such file"),
     (["{clip}", "-o", "/nonexistent/dir/x.mp4"], "does not exist"),
     (["{clip}", "-o", "{tmp}/x.mp4", "--fps", "abc"], "bad frame rate"),
     (["{clip}", "-o", "{tmp}/x.mp4", "--fps", "0"], "bad frame rate"),
     (["{notvideo}", "-o", "{tmp}/x.mp4"], "cannot read a video stream"),
     (["{clip}", "-o", "{tmp}/x.mp4", "--dis-preset", "fast"], "only to models with DIS flows")],
)
def test_bad_input_gives_one_line_and_no_output(clip_with_audio: Path, tmp_path: Path, model_env: dict[str, str],
                                                args: list[str], message: str) -> None:
    notvideo = tmp_path / "notes.txt"
    notvideo.write_text("not a video")
    filled = [a.format(tmp=tmp_path, clip=clip_with_audio, notvideo=notvideo) for a in args]
    res = cli(*filled, env=model_env)
    assert res.returncode != 0
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


def test_unwritable_output_folder(clip_with_audio: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root ignores permission bits: /proc accepts no new files whoever asks
        target = Path("/proc/x.mp4") if os.access(locked, os.W_OK) else locked / "x.mp4"
        res = cli(str(clip_with_audio), "-o", str(target), env=model_env)
    finally:
        locked.chmod(0o700)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "cannot write" in res.stderr or "not writable" in res.stderr
    assert not target.exists()


def test_interrupted_run_leaves_no_output(tmp_path: Path, model_env: dict[str, str]) -> None:
    long_clip = tmp_path / "long.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "20",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(long_clip)], check=True)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "vs_superslomo", str(long_clip), "-o", str(out), "--factor", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **model_env})
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = ""
    while "interpolating" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "interrupted" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_compare_picture(clip_with_audio: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    from PIL import Image

    out = tmp_path / "compare.png"
    res = cli("compare", str(clip_with_audio), "--at", "0.5", "-o", str(out), env=model_env)
    assert res.returncode == 0, res.stderr
    img = Image.open(out)
    assert img.size == (4 * 160, 120 + 24)


def _accelerating_then_cut() -> vs.VideoNode:
    """Five 160x96 frames: a texture moving right by 3, 7 and 11 px (accelerating), then an unrelated texture."""
    rng = np.random.default_rng(4)
    tex = np.kron(rng.random((3, 8, 16)), np.ones((16, 16)))
    other = np.kron(rng.random((3, 8, 12)), np.ones((16, 16)))
    frames = [tex[:, :96, 21 - x : 181 - x] for x in (0, 3, 10, 21)] + [other[:, :96, :160]]
    base = vs.core.std.BlankClip(width=160, height=96, format=vs.RGBS, length=len(frames), fpsnum=24, fpsden=1)

    def draw(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[:] = frames[n][p]
        return out

    return vs.core.std.ModifyFrame(base, base, draw)


def test_quadratic_fallback_and_refine_switches_reach_the_filter(tiny_dis_model_path: Path) -> None:
    from vs_superslomo.cli import Selection, _interpolate, _parser

    clip = _accelerating_then_cut()

    def interpolated(*switches: str) -> vs.VideoNode:
        args = _parser().parse_args(["in.mkv", "-o", "out.mkv", "--model", str(tiny_dis_model_path), "--no-sc",
                                     *switches])
        return _interpolate(clip, None, Selection(clip, 0.0, 0.0, 5 / 24, None), args)[0]

    default, straight, no_fallback = interpolated(), interpolated("--no-quadratic"), interpolated("--no-fallback")

    def planes(node: vs.VideoNode, n: int) -> np.ndarray:
        return np.stack([np.asarray(node.get_frame(n)[p]) for p in range(3)])

    # between frames 1 and 2 the motion bends through frames 0 and 3
    assert not np.array_equal(planes(default, 3), planes(straight, 3))
    assert np.array_equal(planes(default, 3), planes(no_fallback, 3))
    # frames 3 and 4 are unrelated: the default falls back, --no-fallback does not
    assert default.get_frame(7).props["SloMoFallback"] > 0.1
    assert no_fallback.get_frame(7).props["SloMoFallback"] == 0
    # this model's U-Net has random weights: skipping it changes every interpolated frame, no source frame
    unrefined = interpolated("--no-refine")
    assert not np.array_equal(planes(default, 1), planes(unrefined, 1))
    assert np.array_equal(planes(default, 2), planes(unrefined, 2))
