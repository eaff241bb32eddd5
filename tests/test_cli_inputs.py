"""The CLI on awkward real-world inputs, outputs, options and signals (issue 13).

Every test runs the CLI as a real subprocess on files encoded by ffmpeg, with the tiny test model.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import vapoursynth as vs
from safetensors.torch import save_file

from vs_superslomo.checkpoint import FORMAT_NAME, FORMAT_VERSION

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TESTSRC = "testsrc2=size=160x120:rate=10"


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True)


def cli(*args: str, env: dict[str, str] | None = None, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vs_superslomo", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})},
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))  # type: ignore[misc]


def assert_one_line_error(res: subprocess.CompletedProcess[str], message: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()], res.stderr
    assert res.stderr.startswith("vs-superslomo: error: ") and message in res.stderr, res.stderr


def stream_spans(path: Path) -> dict[str, tuple[float, float]]:
    """(first presentation time, end time) of the first video ("v") and audio ("a") stream, from packets."""
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy",
                          "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    bases = {int(i): float(n) / float(d) for i, n, d in re.findall(r"#tb (\d+): (\d+)/(\d+)", out)}
    kinds = {int(i): kind[0] for i, kind in re.findall(r"#media_type (\d+): (\w+)", out)}
    spans: dict[str, tuple[float, float]] = {}
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        index, _, pts, duration = (int(v) for v in line.split(",")[:4])
        start, end = pts * bases[index], (pts + duration) * bases[index]
        old = spans.get(kinds[index], (start, end))
        spans[kinds[index]] = (min(old[0], start), max(old[1], end))
    return spans


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inputs")


@pytest.fixture(scope="module")
def clip(media: Path) -> Path:
    path = media / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", TESTSRC, "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


@pytest.fixture(scope="module")
def model_env(tiny_model_path: Path) -> dict[str, str]:
    return {"VS_SUPERSLOMO_MODEL": str(tiny_model_path)}


# D1: permissions


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_new_outputs_get_the_umask_permissions(clip: Path, tmp_path: Path, model_env: dict[str, str],
                                               umask: int, mode: int) -> None:
    video, picture = tmp_path / "o.mp4", tmp_path / "c.png"
    assert cli(str(clip), "-o", str(video), "-q", env=model_env, umask=umask).returncode == 0
    assert cli("compare", str(clip), "--at", "0.5", "-o", str(picture), env=model_env, umask=umask).returncode == 0
    assert oct(video.stat().st_mode & 0o777) == oct(mode)
    assert oct(picture.stat().st_mode & 0o777) == oct(mode)


def test_an_overwritten_output_keeps_its_permissions(clip: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    video = tmp_path / "o.mp4"
    video.write_bytes(b"old")
    video.chmod(0o640)
    assert cli(str(clip), "-o", str(video), "-q", env=model_env, umask=0o002).returncode == 0
    assert oct(video.stat().st_mode & 0o777) == oct(0o640)
    assert video.stat().st_size > 1000


# D2: the source is never overwritten


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(clip: Path, tmp_path: Path, model_env: dict[str, str],
                                             spelling: str) -> None:
    source = tmp_path / "s.mp4"
    source.write_bytes(clip.read_bytes())
    before = source.read_bytes()
    output = {"same": source, "dotted": tmp_path / "sub" / ".." / "s.mp4", "symlink": tmp_path / "link.mp4",
              "hardlink": tmp_path / "hard.mp4"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        output.symlink_to(source)
    elif spelling == "hardlink":
        os.link(source, output)
    res = cli(str(source), "-o", str(output), "--fps", "50", env=model_env)
    assert_one_line_error(res, "that is the input file")
    assert source.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


# D3: RGB, GIF, PNG, alpha and odd-sized input


def as_rgb(clip: vs.VideoNode) -> np.ndarray:
    if clip.format.color_family != vs.RGB:
        with clip.get_frame(0) as f:
            matrix = f.props.get("_Matrix", 2)
        clip = vs.core.resize.Bicubic(clip, format=vs.RGB24, matrix_in=1 if matrix == 2 else matrix)
    clip = vs.core.resize.Point(clip, format=vs.RGB24)
    with clip.get_frame(0) as f:
        return np.dstack([np.asarray(f[p]) for p in range(3)]).astype(np.int16)


RGBA = f"{TESTSRC},format=rgba"
PICTURE_INPUTS = {
    "gif": (["-f", "lavfi", "-i", TESTSRC], "a.gif"),
    "png-in-mkv": (["-f", "lavfi", "-i", TESTSRC, "-c:v", "png"], "png.mkv"),
    "x264rgb": (["-f", "lavfi", "-i", TESTSRC, "-c:v", "libx264rgb"], "rgb.mkv"),
    "prores4444-alpha": (["-f", "lavfi", "-i", RGBA, "-c:v", "prores_ks", "-profile:v", "4444",
                          "-pix_fmt", "yuva444p10le"], "alpha.mov"),
    "rgba-png": (["-f", "lavfi", "-i", RGBA, "-c:v", "png"], "rgba.mkv"),
}


@pytest.mark.parametrize("kind", list(PICTURE_INPUTS))
def test_rgb_and_alpha_inputs_give_a_correct_output(media: Path, tmp_path: Path, model_env: dict[str, str],
                                                    kind: str) -> None:
    args, name = PICTURE_INPUTS[kind]
    source = media / name
    ffmpeg(*args, "-frames:v", "10", str(source))
    out = tmp_path / "o.mkv"
    res = cli(str(source), "-o", str(out), "--factor", "2", "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    src = vs.core.bs.VideoSource(source=str(source), cachemode=0)
    dst = vs.core.bs.VideoSource(source=str(out), cachemode=0)
    assert dst.num_frames == 20 and (dst.width, dst.height) == (160, 120)
    with src.get_frame(0) as f:
        has_alpha = "_Alpha" in f.props
    assert ("alpha channel" in res.stderr) == has_alpha
    if src.format.color_family == vs.RGB:
        assert (dst.format.subsampling_w, dst.format.subsampling_h) == (0, 0)  # 4:4:4 kept
        with dst.get_frame(0) as f:
            assert f.props["_Matrix"] == 1  # tagged BT.709, the matrix it was converted with
    difference = np.abs(as_rgb(src) - as_rgb(dst)).mean()
    assert difference < 3, difference  # the first frame is the source frame, through x264 at crf 18


def test_odd_sized_420_input_is_not_cropped_silently(media: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    source = media / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", f"{TESTSRC},format=rgb24", "-frames:v", "10", "-vf", "scale=161:121,format=yuv420p",
           "-c:v", "ffv1", str(source))
    out = tmp_path / "o.mp4"
    res = cli(str(source), "-o", str(out), "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    assert "161x121" in res.stderr and "160x120" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_interlaced_input_is_refused_with_the_fix(media: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    source = media / "interlaced.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=50", "-frames:v", "20", "-vf", "tinterlace=4",
           "-c:v", "libx264", "-flags", "+ildct+ilme", "-pix_fmt", "yuv420p", str(source))
    out = tmp_path / "o.mp4"
    res = cli(str(source), "-o", str(out), env=model_env)
    assert_one_line_error(res, "interlaced")
    assert "bwdif" in res.stderr
    assert not out.exists()


# D4: variable frame rate


# D5 and the audio rough edges: timing


def test_audio_video_offset_is_kept(clip: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    source = tmp_path / "vo.mkv"
    ffmpeg("-itsoffset", "0.5", "-i", str(clip), "-f", "lavfi", "-i", "sine=duration=2.1", "-map", "0:v",
           "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(source))
    for name in ("o.mkv", "o.mp4"):
        out = tmp_path / name
        res = cli(str(source), "-o", str(out), "--fps", "50", "-q", env=model_env)
        assert res.returncode == 0, res.stderr
        before, after = stream_spans(source), stream_spans(out)
        offset_before = before["v"][0] - before["a"][0]
        offset_after = after["v"][0] - after["a"][0]
        assert abs(offset_after - offset_before) < 1 / 50, (name, before, after)


def test_stretched_audio_lasts_as_long_as_the_video(clip: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    out = tmp_path / "slow.mkv"
    res = cli(str(clip), "-o", str(out), "--slowmo", "--factor", "8", "--audio", "stretch", "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    spans = stream_spans(out)
    video, audio = spans["v"][1] - spans["v"][0], spans["a"][1] - spans["a"][0]
    assert abs(video - 16) < 0.1
    assert abs(audio - video) < 1 / 10, spans  # within one output frame


def onset(path: Path) -> float:
    """When the audio first gets loud, in seconds from the file's first sample."""
    pcm = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1",
                          "-ar", "48000", "-"], capture_output=True, check=True).stdout
    samples = np.abs(np.frombuffer(pcm, dtype=np.int16))
    return float(np.argmax(samples > 8000)) / 48000


def test_start_cuts_the_audio_at_the_first_frame(media: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    source = media / "beep.mkv"  # silence, then a tone from exactly 1.0 s; PCM so that the onset is sharp
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i",
           "aevalsrc='if(gte(t,1),0.5*sin(2*PI*440*t),0)':s=48000", "-t", "2", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(source))
    out = tmp_path / "cut.mkv"
    res = cli(str(source), "-o", str(out), "--start", "0.3", "--factor", "2", "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    assert vs.core.bs.VideoSource(source=str(out), cachemode=0).num_frames == 2 * (50 - 8)  # from 0.32 s
    # the output starts at the source's 0.32 s, so the tone starts 0.68 s in (0.70 if cut at 0.3 s)
    assert abs(onset(out) - 0.68) < 0.008, onset(out)


# D6: signals


@pytest.fixture(scope="module")
def long_clip(media: Path) -> Path:
    path = media / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "20", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))
    return path


def wait_for_part_file(folder: Path, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not [p for p in folder.iterdir() if ".part" in p.name]:
        assert proc.poll() is None and time.monotonic() < deadline, "no partial file appeared"
        time.sleep(0.05)
    time.sleep(1.0)  # encoding for a while


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM twice", "timeout"])
def test_every_terminating_signal_leaves_no_partial_file(long_clip: Path, tmp_path: Path,
                                                         model_env: dict[str, str], how: str) -> None:
    out = tmp_path / "o.mp4"
    command = [sys.executable, "-m", "vs_superslomo", str(long_clip), "-o", str(out), "--factor", "8", "-q"]
    if how == "timeout":
        command = ["timeout", "12", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **model_env})
    wait_for_part_file(tmp_path, proc)
    for _ in range(2 if how.endswith("twice") else 0 if how == "timeout" else 1):
        proc.send_signal(getattr(signal, how.split()[0]))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "no output written" in err, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []
    ffmpeg_left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert ffmpeg_left == ""


def test_ctrl_c_during_start_up_prints_one_line(clip: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    """SIGINT after the package is imported (bestsource indexing, model loading) but before encoding."""
    out = tmp_path / "o.mp4"
    for delay in (0.0, 0.05, 0.2):
        proc = subprocess.Popen([sys.executable, "-m", "vs_superslomo", str(clip), "-o", str(out), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **model_env})
        deadline = time.monotonic() + 60
        while "bestsource" not in Path(f"/proc/{proc.pid}/maps").read_text().lower():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal arrived: nothing to check
            out.unlink()
            continue
        assert proc.returncode == 130, err
        assert err.strip() == "vs-superslomo: interrupted; no output written", err
    assert not out.exists()


def test_ctrl_c_while_the_package_imports_prints_one_line(clip: Path, tmp_path: Path,
                                                        model_env: dict[str, str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vs_superslomo", str(clip), "-o", str(tmp_path / "o.mp4")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **model_env})
    time.sleep(0.5)  # Python is up and importing torch (about 2 s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err


# D7 and option rough edges: one-line errors


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--start", "nan"], "--start nan"),
     (["--end", "inf"], "--end inf"),
     (["--start", "-1"], "--start -1"),
     (["--fps", "1e-9"], "bad frame rate"),
     (["--crf", "99"], "--crf 99"),
     (["--factor", "101"], "at most 1000"),
     (["--audio", "stretch"], "--audio stretch needs --slowmo")],
)
def test_bad_option_values_give_one_line(clip: Path, tmp_path: Path, model_env: dict[str, str],
                                         args: list[str], message: str) -> None:
    res = cli(str(clip), "-o", str(tmp_path / "o.mp4"), *args, env=model_env)
    assert_one_line_error(res, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("at", ["abc", "nan", "1/0", "inf"])
def test_bad_compare_time_gives_one_line(clip: Path, tmp_path: Path, model_env: dict[str, str], at: str) -> None:
    res = cli("compare", str(clip), "--at", at, "-o", str(tmp_path / "c.png"), env=model_env)
    assert_one_line_error(res, f"--at {at}")


@pytest.mark.parametrize(("name", "codec", "message"),
                         [("o.webm", "x264", "cannot be written to a .webm file"),
                          ("o.gif", "x264", "cannot be written to a .gif file"),
                          ("o", "x264", "without an extension"),
                          ("o.mp4", "ffv1", "cannot be written to a .mp4 file"),
                          ("-", "x264", "standard output")])
def test_unsupported_outputs_are_refused_up_front(clip: Path, tmp_path: Path, model_env: dict[str, str],
                                                  name: str, codec: str, message: str) -> None:
    res = cli(str(clip), "-o", name if name == "-" else str(tmp_path / name), "--codec", codec, env=model_env)
    assert_one_line_error(res, message)
    assert ".part" not in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_output_is_written_through(clip: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    (tmp_path / "videos").mkdir()
    target = tmp_path / "videos" / "real.mp4"
    link = tmp_path / "link.mp4"
    link.symlink_to(target)  # dangling until written
    res = cli(str(clip), "-o", str(link), "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert vs.core.bs.VideoSource(source=str(target), cachemode=0).num_frames == 40


def test_progress_in_a_log_has_no_carriage_returns(clip: Path, tmp_path: Path, model_env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-m", "vs_superslomo", str(clip), "-o", str(tmp_path / "o.mp4"),
                          "--factor", "4"], capture_output=True, timeout=600, env={**os.environ, **model_env})
    assert res.returncode == 0, res.stderr  # stderr is a pipe, as in a log
    assert b"\r" not in res.stderr
    lines = res.stderr.decode().strip().splitlines()
    assert 2 <= len(lines) <= 12, lines
    assert "100%" in lines[-2]


# D8 and weights: model files


def write_model_file(path: Path, config: dict[str, object], tensors: dict[str, torch.Tensor]) -> Path:
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "provenance": "{}",
                "config": json.dumps({"width": 4, **config})}
    save_file(tensors, str(path), metadata=metadata)
    return path


def tiny_state(tiny_model_path: Path, change: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = load_file(str(tiny_model_path))
    first = sorted(state)[0]
    return {**state, first: change(state[first])}


@pytest.mark.parametrize(("config", "message"),
                         [({"width": True}, "width must be an integer"),
                          ({"width": 100000}, "above the largest supported"),
                          ({"width": 256}, "above the largest supported"),
                          ({"width": 128}, "weights do not match the config")])
def test_crafted_model_is_refused_without_building_it(tmp_path: Path, clip: Path, config: dict[str, object],
                                                      message: str) -> None:
    crafted = write_model_file(tmp_path / "crafted.safetensors", config, {"x": torch.zeros(4)})
    assert crafted.stat().st_size < 2000
    measure = ("import resource, subprocess, sys; res = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
               "sys.stdout.write(res.stderr + '@' + str(res.returncode) + '@' + "
               "str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))")
    report = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "vs_superslomo", str(clip),
                             "-o", str(tmp_path / "o.mp4"), "--model", str(crafted)],
                            capture_output=True, text=True, timeout=600, check=True).stdout
    err, code, peak_kb = report.split("@")
    assert code == "2" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "model file" in err and message in err, err
    assert int(peak_kb) < 1_000_000  # KB: the network was never built at the crafted width


@pytest.mark.parametrize(("change", "message"),
                         [(lambda t: t.to(torch.int8), "must be floating point"),
                          (lambda t: torch.full_like(t, float("nan")), "non-finite"),
                          (lambda t: torch.full_like(t, float("inf")), "non-finite")])
def test_weights_that_cannot_give_frames_are_refused(tmp_path: Path, tiny_model_path: Path,
                                                     change: Callable[[torch.Tensor], torch.Tensor],
                                                     message: str) -> None:
    from vs_superslomo import ModelFileError, load_model

    bad = write_model_file(tmp_path / "bad.safetensors", {}, tiny_state(tiny_model_path, change))
    with pytest.raises(ModelFileError, match=message):
        load_model(bad)
