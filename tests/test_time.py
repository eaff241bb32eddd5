"""Exact time through the filter: variable frame rates, timecodes files and held drawings (dedup).

The oracle: an anti-aliased bright bar on black whose centre is at x = X0 + V * s at time s. The
intensity centroid of a frame is the bar's centre exactly, and any mix of two bars at x0 and x1 with
weights (1 - t, t) (blending, warping, or both) has its centroid at (1 - t) x0 + t x1: so the centroid of
an output frame says at which time it was made, whatever the model's quality.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
import vapoursynth as vs
from conftest import make_model
from PIL import Image
from test_cli_inputs import stream_spans

from vs_superslomo import interpolate, save_model
from vs_superslomo.filter import PAIR_PROP
from vs_superslomo.timing import VariableTiming, read_timecodes

core = vs.core
WIDTH, HEIGHT, BAR = 192, 16, 6.0
X0, V = 30.0, 48.0  # pixels, pixels per second
OUT_FPS = 60


def bar_row(centre: float) -> np.ndarray:
    """Each pixel's coverage by the bar [centre - BAR/2, centre + BAR/2]."""
    left, right = centre - BAR / 2, centre + BAR / 2
    edges = np.arange(WIDTH + 1, dtype=np.float64)
    return np.clip(np.minimum(edges[1:], right) - np.maximum(edges[:-1], left), 0, 1).astype(np.float32)


def bar_clip(centres: list[float], durations: list[Fraction] | None = None,
             fps: Fraction = Fraction(24)) -> vs.VideoNode:
    """A GRAYS clip showing the bar at ``centres``; with ``durations`` it is variable-rate (fps 0)."""
    rows = [bar_row(c) for c in centres]
    num, den = (0, 1) if durations else (fps.numerator, fps.denominator)
    base = core.std.BlankClip(width=WIDTH, height=HEIGHT, format=vs.GRAYS, length=len(centres), fpsnum=num,
                              fpsden=den)

    def paint(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        np.asarray(out[0])[:] = rows[n]
        if durations:
            out.props["_DurationNum"] = durations[n].numerator
            out.props["_DurationDen"] = durations[n].denominator
        return out

    return core.std.ModifyFrame(base, base, paint)


def centroid(frame: vs.VideoFrame) -> float:
    """The bar's centre: the intensity centroid of the first plane above its background (the median)."""
    row = np.asarray(frame[0]).astype(np.float64).mean(axis=0)
    row = np.clip(row - np.median(row), 0, None)
    return float((row * (np.arange(WIDTH) + 0.5)).sum() / row.sum())


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DIS model whose U-Net adds nothing: the paper's flow approximation and fusion, deterministic."""
    model = make_model(flow="dis")
    for p in model.interp_net.conv3.parameters():
        torch.nn.init.zeros_(p)
    path = tmp_path_factory.mktemp("models") / "plain-dis.safetensors"
    save_model(model, path)
    return path


def vfr_durations(seed: int = 3) -> list[Fraction]:
    """Pieces at 24, 30 and 60 fps, then 60 fps with timestamps jittered by up to 2 ms."""
    rng = random.Random(seed)
    jitter = [Fraction(1, 60) + Fraction(rng.randint(-2, 2), 1000) for _ in range(8)]
    return [Fraction(1, 24)] * 6 + [Fraction(1, 30)] * 6 + [Fraction(1, 60)] * 8 + jitter


def starts_of(durations: list[Fraction]) -> list[Fraction]:
    return [sum(durations[:i], Fraction(0)) for i in range(len(durations) + 1)]


def expected_centre(when: Fraction, starts: list[Fraction]) -> float:
    """Where the bar is at output time ``when``: slots after the last frame's start repeat it."""
    return X0 + V * float(min(when, starts[-2]))


def test_variable_frame_durations_give_frames_at_their_exact_times(plain_model: Path) -> None:
    durations = vfr_durations()
    starts = starts_of(durations)
    clip = bar_clip([X0 + V * float(s) for s in starts[:-1]], durations)
    out = interpolate(clip, fps_num=OUT_FPS, model=plain_model)
    assert (out.fps_num, out.fps_den) == (OUT_FPS, 1)
    assert abs(out.num_frames / OUT_FPS - float(starts[-1])) <= 1 / OUT_FPS  # the source's duration
    errors = [abs(centroid(f) - expected_centre(Fraction(n, OUT_FPS), starts)) for n, f in enumerate(out.frames())]
    assert max(errors) < 0.5, errors


def test_a_timecodes_file_times_a_constant_rate_clip(plain_model: Path, tmp_path: Path) -> None:
    durations = vfr_durations()
    starts = starts_of(durations)
    timecodes = tmp_path / "timecodes.txt"
    timecodes.write_text("# timecode format v2\n" + "".join(f"{float(s * 1000):.6f}\n" for s in starts[:-1]))
    clip = bar_clip([X0 + V * float(s) for s in starts[:-1]], fps=Fraction(30))  # a wrong average rate
    out = interpolate(clip, fps_num=OUT_FPS, model=plain_model, timecodes=str(timecodes))
    read = read_timecodes(timecodes, len(durations), Fraction(1, 30))
    assert max(abs(float(r - s)) for r, s in zip(read[:-1], starts[:-1], strict=True)) < 1e-8
    errors = [abs(centroid(f) - expected_centre(Fraction(n, OUT_FPS), starts)) for n, f in enumerate(out.frames())]
    assert max(errors) < 0.5, errors


def test_timecodes_v1_and_bad_files(tmp_path: Path) -> None:
    v1 = tmp_path / "v1.txt"
    v1.write_text("# timecode format v1\nAssume 24\n2,3,60\n")
    assert read_timecodes(v1, 5) == [Fraction(0), Fraction(1, 24), Fraction(2, 24), Fraction(2, 24) + Fraction(1, 60),
                                     Fraction(2, 24) + Fraction(2, 60), Fraction(3, 24) + Fraction(2, 60)]
    clip = bar_clip([X0] * 5)
    for text, message in [("# timecode format v2\n0\n40\n", "2 timestamps for a clip of 5 frames"),
                          ("# timecode format v2\n0\n40\n40\n80\n120\n", "increase"),
                          ("hello\n", "neither format v1 nor v2")]:
        v1.write_text(text)
        with pytest.raises(vs.Error, match=message):
            interpolate(clip, fps_num=60, timecodes=str(v1))
    with pytest.raises(vs.Error, match="needs a target rate"):
        interpolate(bar_clip([X0] * 3, [Fraction(1, 24)] * 3), factor=2)


def anime_clip(holds: list[int], still: tuple[int, int] | None = None) -> tuple[vs.VideoNode, list[float]]:
    """24 fps, each drawing held ``holds[k]`` frames at the position of its first frame's time; inside
    ``still`` (a range of frame indices) nothing moves. Returns the clip and every frame's true centre."""
    centres, truth = [], []
    frame = 0
    for hold in holds:
        drawing = X0 + V * frame / 24
        centres += [drawing] * hold
        truth += [X0 + V * (frame + j) / 24 for j in range(hold)]
        frame += hold
    if still:
        a, b = still
        centres[a:b] = [centres[a]] * (b - a)
    return bar_clip(centres), truth


def test_held_drawings_move_smoothly_with_dedup_and_stair_step_without(plain_model: Path) -> None:
    holds = [2, 3, 2, 2, 3, 3, 2, 3]
    clip, _ = anime_clip(holds)
    last_drawing_start = Fraction(sum(holds[:-1]), 24)
    expected = [X0 + V * float(min(Fraction(n, OUT_FPS), last_drawing_start)) for n in range(5 * sum(holds) // 2)]
    with_dedup = [centroid(f) for f in interpolate(clip, fps_num=OUT_FPS, model=plain_model, dedup=True).frames()]
    without = [centroid(f) for f in interpolate(clip, fps_num=OUT_FPS, model=plain_model).frames()]
    last_check = int(last_drawing_start * OUT_FPS)  # after it the last drawing is held, as in the source
    errors = [abs(c - e) for c, e in zip(with_dedup[:last_check], expected, strict=False)]
    assert max(errors) < 0.5, errors
    stair = [abs(c - e) for c, e in zip(without[:last_check], expected, strict=False)]
    assert max(stair) > 2.0  # held for 2-3 frames of 2 px: the plain output keeps the judder


def test_a_still_stretch_stays_still_and_a_slow_pan_is_not_merged(plain_model: Path) -> None:
    still_clip, _ = anime_clip([1] * 20, still=(6, 14))  # 8 equal frames: longer than any held drawing
    out = interpolate(still_clip, fps_num=OUT_FPS, model=plain_model, dedup=True)
    still_outputs = range(round(6 * OUT_FPS / 24), round(13 * OUT_FPS / 24) + 1)
    centres = [centroid(out.get_frame(n)) for n in still_outputs]
    assert max(centres) - min(centres) < 1e-3
    slow = bar_clip([X0 + 0.3 * k for k in range(12)])
    frames = list(interpolate(slow, fps_num=OUT_FPS, model=plain_model, dedup=True).frames())
    assert all(PAIR_PROP not in f.props or f.props[PAIR_PROP][1] - f.props[PAIR_PROP][0] == 1 for f in frames)
    errors = [abs(centroid(f) - (X0 + 0.3 * float(min(Fraction(24 * n, OUT_FPS), 11)))) for n, f in enumerate(frames)]
    assert max(errors) < 0.5


@pytest.mark.parametrize("mode", ["vfr", "dedup"])
def test_random_access_and_threads_give_identical_frames(plain_model: Path, mode: str) -> None:
    if mode == "vfr":
        durations = vfr_durations()
        clip, kwargs = bar_clip([X0 + V * float(s) for s in starts_of(durations)[:-1]], durations), {}
    else:
        clip, kwargs = anime_clip([2, 3, 2, 3, 1, 1, 2])[0], {"dedup": True}
    old = core.num_threads
    try:
        core.num_threads = 1
        reference = [np.asarray(f[0]).tobytes() for f in interpolate(clip, fps_num=OUT_FPS, model=plain_model,
                                                                    **kwargs).frames()]
        for threads in (2, 8):
            core.num_threads = threads
            out = interpolate(clip, fps_num=OUT_FPS, model=plain_model, **kwargs)
            order = list(range(out.num_frames))
            random.Random(threads).shuffle(order)
            with ThreadPoolExecutor(threads) as pool:
                got = dict(pool.map(lambda n, out=out: (n, np.asarray(out.get_frame(n)[0]).tobytes()), order))
            assert [got[n] for n in range(out.num_frames)] == reference
    finally:
        core.num_threads = old


def test_variable_timing_of_equal_durations_is_the_constant_timing() -> None:
    from vs_superslomo.timing import Timing

    for src, out, frames in [(Fraction(24), Fraction(60), 7), (Fraction(30000, 1001), Fraction(24), 11)]:
        constant = Timing(frames, src, out)
        variable = VariableTiming.from_durations([1 / src] * frames, out)
        assert variable.output_frames == constant.output_frames
        assert variable.outputs_per_source() == constant.outputs_per_source()
        assert [variable.slot(n) for n in range(constant.output_frames)] == [
            constant.slot(n) for n in range(constant.output_frames)]


# The CLI: real files with real timestamps, through bestsource and ffmpeg.

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def write_frames(folder: Path, centres: list[float]) -> list[Path]:
    paths = []
    for k, c in enumerate(centres):
        row = (np.round(bar_row(c) * 219) + 16).astype(np.uint8)
        paths.append(folder / f"{k:04d}.png")
        Image.fromarray(np.repeat(row[None], HEIGHT, axis=0), mode="L").save(paths[-1])
    return paths


def encode_with_times(folder: Path, centres: list[float], durations: list[Fraction], codec: list[str],
                      name: str) -> Path:
    """A video whose frame k shows the bar at centres[k] and lasts durations[k], with a tone as long as it.

    The frames' times are set by setpts from a table (nested ifs), written in milliseconds (the mkv/mp4
    time base the muxers use here)."""
    write_frames(folder, centres)
    starts = starts_of(durations)
    table = "0"
    for k in reversed(range(len(centres))):
        table = f"if(eq(N\\,{k})\\,{float(starts[k]):.6f}\\,{table})"  # commas escaped inside a filter
    total = float(starts[-1])
    out = folder / name
    subprocess.run([FFMPEG, "-v", "error", "-y", "-framerate", "1", "-i", str(folder / "%04d.png"), "-f", "lavfi",
                    "-i", f"sine=frequency=440:duration={total:.6f}",
                    "-filter:v", f"settb=1/1000000,setpts=({table})/TB",
                    "-map", "0:v", "-map", "1:a", "-fps_mode", "passthrough", "-enc_time_base:v", "1/1000", *codec,
                    "-c:a", "aac", str(out)], check=True)
    return out


def cli_centres(source: Path, out: Path, model: Path, *args: str) -> list[float]:
    res = subprocess.run([sys.executable, "-m", "vs_superslomo", str(source), "-o", str(out), "--fps", str(OUT_FPS),
                          "--codec", "ffv1", "-q", *args], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "VS_SUPERSLOMO_MODEL": str(model)})
    assert res.returncode == 0, res.stderr
    clip = core.bs.VideoSource(str(out), cachemode=0)
    assert (clip.fps_num, clip.fps_den) == (OUT_FPS, 1)
    return [centroid(f) for f in clip.frames()]


def test_the_cli_converts_variable_frame_rate_files_at_exact_times(plain_model: Path, tmp_path: Path) -> None:
    durations = vfr_durations()
    starts = starts_of(durations)
    source = encode_with_times(tmp_path, [X0 + V * float(s) for s in starts[:-1]], durations, ["-c:v", "ffv1"],
                               "vfr.mkv")
    out = tmp_path / "out.mkv"
    centres = cli_centres(source, out, plain_model)
    errors = [abs(c - expected_centre(Fraction(n, OUT_FPS), starts)) for n, c in enumerate(centres)]
    assert max(errors) < 0.5, errors
    assert abs(len(centres) / OUT_FPS - float(starts[-1])) <= 1 / OUT_FPS  # the source's duration
    before, after = stream_spans(source), stream_spans(out)
    assert abs(after["a"][0] - before["a"][0]) < 1 / OUT_FPS and abs(after["v"][0] - before["v"][0]) < 1 / OUT_FPS
    length = {k: v[1] - v[0] for k, v in before.items()}
    assert abs((after["a"][1] - after["a"][0]) - length["a"]) < 2 / OUT_FPS, (before, after)


def test_the_cli_dedups_held_drawings_through_compression(plain_model: Path, tmp_path: Path) -> None:
    holds = [2, 3, 2, 2, 3, 3, 2, 3]
    clip, _ = anime_clip(holds)
    centres = [centroid(f) for f in clip.frames()]
    source = encode_with_times(tmp_path, centres, [Fraction(1, 24)] * len(centres),
                               ["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p"], "anime.mp4")
    last_start = Fraction(sum(holds[:-1]), 24)
    smooth = cli_centres(source, tmp_path / "dedup.mkv", plain_model, "--dedup")
    expected = [X0 + V * float(min(Fraction(n, OUT_FPS), last_start)) for n in range(len(smooth))]
    errors = [abs(c - e) for c, e in zip(smooth, expected, strict=True)]
    assert max(errors) < 0.5, errors
    judder = cli_centres(source, tmp_path / "plain.mkv", plain_model)
    assert max(abs(c - e) for c, e in zip(judder, expected, strict=True)) > 2.0
