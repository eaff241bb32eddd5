"""Hostile shapes, threads, reloads and pipes: the filter never crashes, hangs or prints."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vs_superslomo import interpolate
from vs_superslomo.timing import Timing

core = vs.core

SUPPORTED = [vs.YUV420P8, vs.YUV422P10, vs.YUV444P16, vs.YUV420PH, vs.YUV444PS, vs.YUV410P8, vs.RGB24, vs.RGB30,
             vs.RGB48, vs.RGBH, vs.RGBS, vs.GRAY8, vs.GRAY16, vs.GRAYH, vs.GRAYS]
RATES = [(0, 1), (1, 1), (24, 1), (24000, 1001), (30000, 1001), (2**31 - 1, 1), (2**40 + 1, 7), (1, 2**31 - 1)]
TARGETS = [None, (60, 1), (60000, 1001), (25, 2), (2**62, 1), (0, 1), (7, 0)]


@st.composite
def clips(draw: st.DrawFn) -> vs.VideoNode:
    fmt = core.get_video_format(draw(st.sampled_from(SUPPORTED)))
    sw, sh = 1 << fmt.subsampling_w, 1 << fmt.subsampling_h
    width = sw * draw(st.integers(1, 70 // sw))
    height = sh * draw(st.integers(1, 50 // sh))
    length = draw(st.integers(1, 5))
    num, den = draw(st.sampled_from(RATES))
    clip = core.std.BlankClip(width=width, height=height, format=fmt.id, length=length, fpsnum=num, fpsden=den,
                              keep=True)
    # a little content so that flows and scene-cut statistics have something to chew on
    return core.std.FrameEval(clip, lambda n, c=clip: core.std.BlankClip(c, color=_color(fmt, n), keep=True))


def _color(fmt: vs.VideoFormat, n: int) -> list[float]:
    top = 1.0 if fmt.sample_type == vs.FLOAT else (1 << fmt.bits_per_sample) - 1
    value = top * (0.2 + 0.1 * n)
    if fmt.color_family == vs.YUV:
        mid = 0.0 if fmt.sample_type == vs.FLOAT else float(1 << (fmt.bits_per_sample - 1))
        return [value, mid, mid]
    return [value] * fmt.num_planes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clip=clips(), factor=st.sampled_from([None, 0, 1, 2, 3, 8]), target=st.sampled_from(TARGETS),
       dis=st.booleans())
def test_every_clip_shape_gives_right_frames_or_a_slomo_error(tiny_model_path: Path, tiny_dis_model_path: Path,
                                                              clip: vs.VideoNode, factor: int | None,
                                                              target: tuple[int, int] | None, dis: bool) -> None:
    kwargs: dict[str, object] = {"model": tiny_dis_model_path if dis else tiny_model_path}
    if target is not None:
        kwargs["fps_num"], kwargs["fps_den"] = target
    if factor is not None:
        kwargs["factor"] = factor
    try:
        out = interpolate(clip, **kwargs)  # type: ignore[arg-type]
    except vs.Error as e:
        assert str(e).startswith("slomo: "), str(e)
        return
    assert target is None or factor is None
    src = Fraction(clip.fps_num, clip.fps_den)
    rate = Fraction(*target) if target else src * (2 if factor is None else factor)
    assert Fraction(out.fps_num, out.fps_den) == rate
    assert out.num_frames == Timing(clip.num_frames, src, rate).output_frames
    assert out.format.id == clip.format.id and (out.width, out.height) == (clip.width, clip.height)
    for n in sorted({0, 1, out.num_frames // 2, out.num_frames - 1}):
        if n < out.num_frames:
            with out.get_frame(n) as f:
                assert f.format.id == clip.format.id
                assert all(np.isfinite(np.asarray(f[p], dtype=np.float64)).all() for p in range(f.format.num_planes))


@pytest.mark.parametrize("flow", ["network", "dis"])
def test_2000_frames_from_8_threads_in_random_order_equal_a_sequential_run(
    flow: str, tiny_model_path: Path, tiny_dis_model_path: Path
) -> None:
    model = tiny_dis_model_path if flow == "dis" else tiny_model_path
    rng = np.random.default_rng(0)
    texture = (rng.random((3, 40, 600)) * 255).astype(np.uint8)
    base = core.std.BlankClip(width=48, height=32, format=vs.RGB24, length=500)

    def draw(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[:] = texture[p, 4:36, n % 500 : n % 500 + 48] if n % 97 else texture[p, :32, :48]
        return out

    clip = core.std.ModifyFrame(base, base, draw)
    old = core.num_threads
    try:
        core.num_threads = 1
        sequential = [bytes(np.asarray(f[0])) + bytes(np.asarray(f[2])) for f in
                      interpolate(clip, factor=4, model=model).frames()]
        core.num_threads = 8
        out = interpolate(clip, factor=4, model=model)
        order = list(range(out.num_frames))
        random.Random(1).shuffle(order)

        def fetch(n: int) -> tuple[int, bytes]:
            with out.get_frame(n) as f:
                return n, bytes(np.asarray(f[0])) + bytes(np.asarray(f[2]))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(fetch, order))
    finally:
        core.num_threads = old
    assert len(sequential) == 2000
    mismatched = [n for n, data in results if data != sequential[n]]
    assert mismatched == []


RELOADS = """
import gc, resource, sys
import vapoursynth as vs

class Policy(vs.EnvironmentPolicy):
    def on_policy_registered(self, api):
        self.api, self.env = api, None
    def on_policy_cleared(self):
        pass
    def get_current_environment(self):
        return self.env
    def set_environment(self, env):
        old, self.env = self.env, env
        return old
    def is_alive(self, env):
        return True

policy = Policy()
vs.register_policy(policy)
rss = []
for cycle in range(30):
    env = policy.api.create_environment()
    policy.env = env
    core = vs.core
    clip = core.std.BlankClip(width=96, height=64, length=3, format=vs.YUV420P8, color=[40 + cycle, 128, 128])
    out = core.slomo.Interpolate(clip, factor=2)
    frames = [f.props.get("SloMoTime", 0.0) for f in out.frames()]
    assert frames == [0.0, 0.5, 0.0, 0.5, 0.0, 0.0], frames
    del core, clip, out
    policy.env = None
    policy.api.destroy_environment(env)
    gc.collect()
    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
from vs_superslomo import filter as f
growth = rss[-1] - rss[9]
sys.stderr.write(f"rss after 10: {rss[9]} KB, after 30: {rss[-1]} KB, growth {growth} KB\\n")
assert growth < 50_000, rss
"""


def test_30_editor_reloads_leave_no_growth(tmp_path: Path, tiny_model_path: Path) -> None:
    script = tmp_path / "reloads.py"
    script.write_text(RELOADS)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "VS_SUPERSLOMO_MODEL": str(tiny_model_path)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""


def test_broken_pipe_ends_vspipe_cleanly(tmp_path: Path, tiny_model_path: Path) -> None:
    script = tmp_path / "long.vpy"
    script.write_text(textwrap.dedent("""
        import vapoursynth as vs
        core = vs.core
        clip = core.std.BlankClip(width=160, height=96, length=400, format=vs.YUV420P8)
        clip = core.std.FrameEval(clip, lambda n, c=clip: core.std.BlankClip(c, color=[n % 200, 128, 128]))
        core.slomo.Interpolate(clip, factor=4).set_output()
    """))
    vspipe = Path(sys.executable).parent / "vspipe"
    proc = subprocess.Popen([str(vspipe), "-c", "y4m", str(script), "-"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "VS_SUPERSLOMO_MODEL": str(tiny_model_path)})
    assert proc.stdout is not None
    proc.stdout.read(100_000)  # a few frames, then the consumer goes away
    proc.stdout.close()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        pytest.fail("vspipe hung after its consumer exited")
    assert proc.returncode != 0  # it noticed, and stopped
