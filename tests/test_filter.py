"""The VapourSynth filter through real vspipe subprocesses and a real in-process core."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from conftest import run_vspipe

from vs_superslomo import interpolate
from vs_superslomo.checkpoint import default_model_path

core = vs.core

PATTERN = """
import numpy as np
import vapoursynth as vs
core = vs.core

def moving_pattern(length=6, width=160, height=96, step=8, fmt=vs.RGB24, fpsnum=24, fpsden=1):
    rng = np.random.default_rng(0)
    big = rng.random((3, height // 16 + 2, (width + step * length + 64) // 16 + 2))
    tex = np.kron(big, np.ones((16, 16)))
    # a little smoothing so that the texture is band-limited
    tex = (tex + np.roll(tex, 1, 1) + np.roll(tex, 1, 2) + np.roll(tex, (1, 1), (1, 2))) / 4
    tex = (tex * 255).round().astype(np.uint8)
    base = core.std.BlankClip(width=width, height=height, format=vs.RGB24, length=length,
                              fpsnum=fpsnum, fpsden=fpsden)

    def draw(n, f):
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[:] = tex[p, :height, step * n : step * n + width]
        return out

    clip = core.std.ModifyFrame(base, base, draw)
    if fmt != vs.RGB24:
        is_yuv = core.get_video_format(fmt).color_family == vs.YUV
        clip = core.resize.Bicubic(clip, format=fmt, matrix_s="709" if is_yuv else None)
    return clip
"""


def write_script(tmp_path: Path, body: str, name: str = "script.vpy") -> Path:
    path = tmp_path / name
    path.write_text(PATTERN + textwrap.dedent(body))
    return path


def y4m_frames(data: bytes, frame_size: int) -> tuple[dict[str, str], list[bytes]]:
    header, _, rest = data.partition(b"\n")
    fields = {f[:1].decode(): f[1:].decode() for f in header.split()[1:]}
    frames = []
    pos = 0
    while pos < len(rest):
        nl = rest.index(b"\n", pos)
        assert rest[pos:nl].startswith(b"FRAME")
        frames.append(rest[nl + 1 : nl + 1 + frame_size])
        pos = nl + 1 + frame_size
    return fields, frames


def info(path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    res = run_vspipe(["--info", str(path)], env=env)
    assert res.returncode == 0, res.stderr.decode()
    out = {}
    for line in res.stdout.decode().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def model_env(tiny_model_path: Path) -> dict[str, str]:
    return {"VS_SUPERSLOMO_MODEL": str(tiny_model_path)}


def test_vspipe_info_factor_mode(tmp_path: Path, model_env: dict[str, str]) -> None:
    script = write_script(tmp_path, """
        clip = moving_pattern(length=6, fmt=vs.YUV420P8)
        core.slomo.Interpolate(clip, factor=4).set_output()
    """)
    i = info(script, model_env)
    assert i["Frames"] == "24"
    assert i["FPS"].startswith("96/1")
    assert i["Format Name"] == "YUV420P8"


@pytest.mark.parametrize(
    ("src", "target", "frames", "fps"),
    [((25, 1), (60, 1), 15, "60/1"), ((24000, 1001), (60000, 1001), 15, "60000/1001"),
     ((50, 1), (25, 1), 3, "25/1")],
)
def test_vspipe_info_fps_mode(tmp_path: Path, model_env: dict[str, str], src: tuple[int, int],
                              target: tuple[int, int], frames: int, fps: str) -> None:
    script = write_script(tmp_path, f"""
        clip = moving_pattern(length=6, fpsnum={src[0]}, fpsden={src[1]})
        core.slomo.Interpolate(clip, fps_num={target[0]}, fps_den={target[1]}).set_output()
    """)
    i = info(script, model_env)
    assert i["Frames"] == str(frames)
    assert i["FPS"].startswith(fps)


def test_source_time_frames_are_bit_exact_in_the_y4m_stream(tmp_path: Path, model_env: dict[str, str]) -> None:
    src = write_script(tmp_path, """
        moving_pattern(length=5, fmt=vs.YUV420P10).set_output()
    """, "src.vpy")
    out = write_script(tmp_path, """
        clip = moving_pattern(length=5, fmt=vs.YUV420P10)
        core.slomo.Interpolate(clip, factor=3).set_output()
    """, "out.vpy")
    size = 160 * 96 * 2 * 3 // 2
    a = run_vspipe(["-c", "y4m", str(src), "-"], env=model_env)
    b = run_vspipe(["-c", "y4m", str(out), "-"], env=model_env)
    assert a.returncode == 0 and b.returncode == 0, b.stderr.decode()
    _, source_frames = y4m_frames(a.stdout, size)
    fb, output_frames = y4m_frames(b.stdout, size)
    assert fb["F"] == "72:1" and fb["C"].startswith("420p10")
    assert len(source_frames) == 5 and len(output_frames) == 15
    for i, frame in enumerate(source_frames):
        assert output_frames[3 * i] == frame
    assert output_frames[1] != output_frames[0]
    # the slots after the last source frame repeat it
    assert output_frames[13] == output_frames[14] == source_frames[4]


def test_interpolated_midpoint_beats_frame_blending(tmp_path: Path) -> None:
    assert default_model_path().exists(), "the shipped default model is missing"
    script = write_script(tmp_path, """
        clip = moving_pattern(length=4, step=6, fmt=vs.YUV444P8)
        core.slomo.Interpolate(clip, factor=2).set_output()
    """)
    truth = write_script(tmp_path, """
        moving_pattern(length=7, step=3, fmt=vs.YUV444P8).set_output()
    """, "truth.vpy")
    size = 160 * 96 * 3
    res, ref = run_vspipe(["-c", "y4m", str(script), "-"]), run_vspipe(["-c", "y4m", str(truth), "-"])
    assert res.returncode == 0, res.stderr.decode()
    _, frames = y4m_frames(res.stdout, size)
    _, true_frames = y4m_frames(ref.stdout, size)

    def arr(b: bytes) -> np.ndarray:
        return np.frombuffer(b, np.uint8).reshape(3, 96, 160).astype(np.float64)[:, 8:-8, 8:-8]

    for k in range(3):
        mid, truth_mid = arr(frames[2 * k + 1]), arr(true_frames[2 * k + 1])
        blend = (arr(frames[2 * k]) + arr(frames[2 * k + 2])) / 2
        ours_err = np.abs(mid - truth_mid).mean()
        blend_err = np.abs(blend - truth_mid).mean()
        # the bar is "closer to the truth than blending", with a 10% margin
        assert ours_err < 0.9 * blend_err, (k, ours_err, blend_err)


def test_a_vpy_that_never_imports_the_package_works_and_prints_nothing(tmp_path: Path,
                                                                      model_env: dict[str, str]) -> None:
    script = write_script(tmp_path, """
        clip = moving_pattern(length=3, fmt=vs.YUV444P8)
        core.slomo.Interpolate(clip, factor=2).set_output()
    """)
    assert "vs_superslomo" not in script.read_text()
    res = run_vspipe(["-c", "y4m", str(script), "-"], env=model_env)
    assert res.returncode == 0, res.stderr.decode()
    _, frames = y4m_frames(res.stdout, 160 * 96 * 3)
    assert len(frames) == 6  # the stream parses exactly: nothing else was written to stdout


def _pattern_clip(length: int = 6, fmt: int = vs.YUV420P8, **kw: int) -> vs.VideoNode:
    scope: dict[str, object] = {}
    exec(PATTERN, scope)
    return scope["moving_pattern"](length=length, fmt=fmt, **kw)  # type: ignore[operator]


def _frame_bytes(f: vs.VideoFrame) -> bytes:
    return b"".join(np.asarray(f[p]).tobytes() for p in range(f.format.num_planes))


@pytest.mark.parametrize("fmt", [vs.YUV420P8, vs.RGBS], ids=["YUV420P8", "RGBS"])
def test_random_access_and_thread_counts_give_identical_frames(tiny_model_path: Path, fmt: int) -> None:
    clip = _pattern_clip(length=6, fmt=fmt)  # float frames show a difference in the last bit
    old = core.num_threads
    try:
        core.num_threads = 1
        seq = [_frame_bytes(f) for f in interpolate(clip, factor=4, model=tiny_model_path).frames()]
        core.num_threads = 4
        out = interpolate(clip, factor=4, model=tiny_model_path)
        order = list(range(len(out))) * 2
        random.Random(5).shuffle(order)
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda n: (n, _frame_bytes(out.get_frame(n))), order))
    finally:
        core.num_threads = old
    for n, data in got:
        assert data == seq[n], n


def test_vapoursynth_caches_hold_a_fixed_window_of_the_filters_rgb_frames(tiny_model_path: Path) -> None:
    # The filter's frame-reordering nodes had adaptive caches holding every RGB frame they passed (~400 MB
    # after 24 source frames at 1920x1080); 40 source frames held 44 RGB frames' worth here.
    from vs_superslomo.filter import NEIGHBOUR_WINDOW

    clip = _pattern_clip(length=40, fmt=vs.YUV420P8, width=320, height=192)
    core.std.SetVideoCache(clip, 0)  # the source's caches are the script's own
    core.clear_cache()
    out = interpolate(clip, factor=2, model=tiny_model_path)
    for _ in out.frames():
        pass
    rgb_frames = core.used_cache_size / (320 * 192 * 3 * 2)
    assert rgb_frames < NEIGHBOUR_WINDOW + core.num_threads + 10


FORMATS = [vs.YUV420P8, vs.YUV422P10, vs.YUV444P16, vs.YUV420PH, vs.YUV444PS, vs.RGB24, vs.RGB30, vs.RGB48,
           vs.RGBH, vs.RGBS, vs.GRAY8, vs.GRAY16, vs.GRAYS]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: vs.core.get_video_format(f).name)
def test_every_format_keeps_its_format_and_source_frames(tiny_model_path: Path, fmt: int) -> None:
    clip = _pattern_clip(length=3, fmt=fmt) if fmt != vs.GRAY8 and fmt != vs.GRAY16 and fmt != vs.GRAYS else \
        core.resize.Bicubic(_pattern_clip(length=3), format=fmt, matrix_in_s="709")
    out = interpolate(clip, factor=2, model=tiny_model_path)
    assert out.format.id == clip.format.id and out.num_frames == 6
    for n in range(6):
        f = out.get_frame(n)
        assert f.format.id == clip.format.id
        if n % 2 == 0 or n == 5:
            assert _frame_bytes(f) == _frame_bytes(clip.get_frame(min(n // 2, 2)))
        else:
            assert f.props[TIME] == 0.5


TIME = "SloMoTime"


def test_props_duration_and_timestep(tiny_model_path: Path) -> None:
    clip = core.std.SetFrameProps(_pattern_clip(length=3, fpsnum=24000, fpsden=1001), Marker=7, _Matrix=1)
    out = interpolate(clip, fps_num=60000, fps_den=1001, model=tiny_model_path)
    for n in range(out.num_frames):
        f = out.get_frame(n)
        assert (f.props["_DurationNum"], f.props["_DurationDen"]) == (1001, 60000)
        assert f.props["Marker"] == 7 and f.props["_Matrix"] == 1
        p = Fraction(n * 2, 5)
        if p.denominator == 1 or p >= 2:
            assert TIME not in f.props
        else:
            assert f.props[TIME] == pytest.approx(float(p - int(p)))


def _cut_clip() -> vs.VideoNode:
    a = _pattern_clip(length=3)
    b = core.std.BlankClip(a, color=[200, 60, 180], length=3)
    return a + b


def test_scene_cuts_repeat_the_nearer_source_frame(tiny_model_path: Path) -> None:
    clip = _cut_clip()
    out = interpolate(clip, factor=4, model=tiny_model_path)
    src = [_frame_bytes(f) for f in clip.frames()]
    # pair (2, 3) spans the cut: slots 9 (t=.25) and 10 (t=.5) and 11 (t=.75)
    assert _frame_bytes(out.get_frame(9)) == src[2]
    assert _frame_bytes(out.get_frame(10)) == src[3]
    assert _frame_bytes(out.get_frame(11)) == src[3]
    assert _frame_bytes(out.get_frame(5)) not in src  # inside the first shot we interpolate


def test_scene_change_props_are_honoured_without_detection(tiny_model_path: Path) -> None:
    clip = _pattern_clip(length=4)
    marked = core.std.FrameEval(clip, lambda n: core.std.SetFrameProps(clip, _SceneChangePrev=1) if n == 2 else clip)
    out = interpolate(marked, factor=2, sc=False, model=tiny_model_path)
    assert _frame_bytes(out.get_frame(3)) == _frame_bytes(marked.get_frame(2))  # t = 0.5: the later frame
    assert _frame_bytes(out.get_frame(1)) != _frame_bytes(marked.get_frame(0))


BAD_ARGS = [
    ({"factor": 0}, "factor must be an integer of at least 1"),
    ({"fps_num": 0}, "fps_num must be a positive integer"),
    ({"fps_num": 30, "fps_den": -1}, "fps_den must be a positive integer"),
    ({"fps_den": 2}, "fps_den needs fps_num"),
    ({"factor": 2, "fps_num": 60}, "not both"),
    ({"model": "/nonexistent/x.safetensors"}, "no such file"),
    ({"device": "tpu"}, "device"),
    ({"flow_scale": 0.3}, "flow_scale must be one of"),
    ({"sc_threshold": 0.0}, "sc_threshold"),
    ({"factor": 2**23}, "would have 25,165,824 frames; at most 16,777,216"),
    ({"fps_num": 2**62}, "at most 16,777,216 are supported"),  # minutes of graph building before the limit
    ({"dis_preset": "slow"}, "dis_preset must be one of ultrafast, fast, medium"),
    ({"dis_preset": "fast"}, "dis_preset applies only to models with DIS flows"),  # the tiny model has a flow U-Net
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGS)
def test_bad_arguments_raise_before_any_frame(tiny_model_path: Path, kwargs: dict[str, object], message: str) -> None:
    clip = _pattern_clip(length=3)
    kwargs = {"model": str(tiny_model_path), **kwargs}
    with pytest.raises(vs.Error, match=f"^slomo: .*{message}"):
        interpolate(clip, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(vs.Error, match=f"^slomo.Interpolate: .*{message}"):
        core.slomo.Interpolate(clip, **kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: core.std.BlankClip(length=1, format=vs.YUV420P8), "at least 2 frames"),
        (lambda: core.std.BlankClip(length=5, fpsnum=0, fpsden=1), "variable frame rate"),
        (lambda: core.std.Splice([core.std.BlankClip(format=vs.YUV420P8, length=2),
                                  core.std.BlankClip(format=vs.RGB24, length=2)], mismatch=True), "variable format"),
        (lambda: core.std.Splice([core.std.BlankClip(width=64, height=64, length=2, format=vs.RGB24),
                                  core.std.BlankClip(width=32, height=32, length=2, format=vs.RGB24)], mismatch=True),
         "variable frame size"),
    ],
)
def test_bad_clips_are_refused(tiny_model_path: Path, make, message: str) -> None:
    with pytest.raises(vs.Error, match=message):
        core.slomo.Interpolate(make(), model=str(tiny_model_path))


RELOAD = """
import sys
import numpy as np
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
outputs = []
for cycle in range(2):
    env = policy.api.create_environment()
    policy.env = env
    core = vs.core
    clip = core.std.BlankClip(width=64, height=48, length=3, format=vs.RGB24, color=[10 * cycle, 20, 30])
    out = core.slomo.Interpolate(clip, factor=2)
    outputs.append([bytes(np.asarray(f[0]).tobytes()) for f in out.frames()])
    del core, clip, out
    policy.env = None
    policy.api.destroy_environment(env)
assert len(outputs[0]) == len(outputs[1]) == 6
assert outputs[0] != outputs[1]
sys.stderr.write("reload ok\\n")
"""


def test_two_scripts_one_after_the_other_in_one_process(tmp_path: Path, model_env: dict[str, str]) -> None:
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **model_env}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "reload ok" in res.stderr
    assert res.stdout == ""


def _cuda_ready() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_ready(), reason="needs CUDA and CuPy (our CI has neither)")
def test_cuda_transfers_give_the_cpu_frames(tiny_model_path: Path) -> None:
    clip = _pattern_clip(length=3, fmt=vs.RGBS)
    cpu = interpolate(clip, factor=2, model=tiny_model_path, device="cpu").get_frame(1)
    gpu = interpolate(clip, factor=2, model=tiny_model_path, device="cuda", fp16=False).get_frame(1)
    for p in range(3):
        assert np.abs(np.asarray(cpu[p]) - np.asarray(gpu[p])).max() < 1e-3


def test_a_host_without_python_gets_a_clear_error(tmp_path: Path) -> None:
    import shutil

    import vapoursynth

    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("a C compiler is needed to build the test host")
    vs_dir = Path(vapoursynth.__file__).parent
    host = tmp_path / "host"
    build = subprocess.run([gcc, "-O1", "-o", str(host), str(Path(__file__).parent / "native" / "no_python_host.c"),
                            f"-I{vs_dir / 'include'}", str(vs_dir / "libvapoursynth.so.4"),
                            f"-Wl,-rpath,{vs_dir}"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    plugin = vs_dir / "plugins" / "libvsslomo.so"
    res = subprocess.run([str(host), str(plugin)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert "no Python interpreter" in res.stdout
