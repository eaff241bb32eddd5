"""Rendering in ranges (issue 18): --workers and --ray give the frames of one process; killed workers, resume.

Real subprocesses, a real two-node Ray cluster on this machine, no mocks. The clip has a scene cut and
an odd number of frames (21 source frames at 10 fps, a cut after frame 10); FFV1 is lossless, so the
decoded output frames of every way of rendering must be byte-identical.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import vapoursynth as vs

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
VENV_BIN = Path(sys.executable).parent
FFV1 = ["--codec", "ffv1", "--segment-seconds", "0.5"]


def cli(*args: str, env: dict[str, str], umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vs_superslomo", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def frames(path: Path) -> list[bytes]:
    """Every decoded frame's planes, as bytes."""
    clip = vs.core.bs.VideoSource(source=str(path), cachemode=0)
    return [b"".join(np.asarray(f[p]).tobytes() for p in range(clip.format.num_planes)) for f in clip.frames()]


@pytest.fixture(scope="module")
def model_env(tiny_model_path: Path) -> dict[str, str]:
    return {"VS_SUPERSLOMO_MODEL": str(tiny_model_path)}


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 frames of one shot, then 10 of another (a scene cut), with a tone; 160x120 FFV1."""
    path = tmp_path_factory.mktemp("render") / "cut.mkv"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "mandelbrot=size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440",
                    "-filter_complex", "[0:v]trim=end_frame=11[a];[1:v]trim=end_frame=10,setpts=PTS-STARTPTS[b];"
                    "[a][b]concat=n=2:v=1[v]", "-map", "[v]", "-map", "2:a", "-t", "2.1",
                    "-c:v", "ffv1", "-c:a", "pcm_s16le", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def one_worker(cut_clip: Path, model_env: dict[str, str]) -> tuple[Path, list[bytes]]:
    """The reference: --workers 1 (25 fps: 53 output frames, 5 ranges, one starting at the cut)."""
    out = cut_clip.parent / "one.mkv"
    res = cli(str(cut_clip), "-o", str(out), "--fps", "25", "--workers", "1", *FFV1, env=model_env)
    assert res.returncode == 0, res.stderr
    assert "rendered 5 of 5 segments (53 frames) with 1 worker" in res.stderr
    return out, frames(out)


def test_two_workers_and_one_process_give_the_frames_of_one_worker(
        cut_clip: Path, tmp_path: Path, model_env: dict[str, str], one_worker: tuple[Path, list[bytes]]) -> None:
    _, expected = one_worker
    assert len(expected) == 53 and len(set(expected)) > 40
    out = tmp_path / "two.mkv"
    res = cli(str(cut_clip), "-o", str(out), "--fps", "25", "--workers", "2", *FFV1, env=model_env, umask=0o027)
    assert res.returncode == 0, res.stderr
    assert frames(out) == expected
    assert oct(out.stat().st_mode & 0o777) == oct(0o640)  # the umask, as in the one-process path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.mkv"]  # the work folder is gone
    assert "\r" not in res.stderr and "ETA" in res.stderr  # a log: plain progress lines
    single = tmp_path / "single.mkv"
    res = cli(str(cut_clip), "-o", str(single), "--fps", "25", "--codec", "ffv1", "--threads", "1", "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    assert frames(single) == expected
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Audio: aac" in info  # muxed once, at the end


def test_ranges_start_at_the_cut_and_on_source_frames(cut_clip: Path, model_env: dict[str, str]) -> None:
    code = ("import sys; from vs_superslomo.cli import convert_args, prepare; "
            "from vs_superslomo.render_plan import plan_ranges; "
            "print(plan_ranges(prepare(convert_args(sys.argv[1:])), 0.5))")
    res = subprocess.run([sys.executable, "-c", code, str(cut_clip), "-o", str(cut_clip.parent / "x.mkv"),
                          "--fps", "25", "--codec", "ffv1"], capture_output=True, text=True,
                         env={**os.environ, **model_env}, check=True)
    # t == 0 every 5 output frames (source frames 0, 2, 4 ...); the new shot (source frame 11) starts at 28
    assert res.stdout.strip() == "[(0, 10), (10, 28), (28, 35), (35, 50), (50, 53)]"


def _render_workers(folder: Path) -> list[int]:
    """Our own worker processes: those whose command line names this test's work folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vs_superslomo.render_worker" in command and any(str(folder).encode() in a for a in command):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def long_job(cut_clip: Path, model_env: dict[str, str]) -> tuple[list[str], list[bytes]]:
    """80 fps: 168 output frames in 5 ranges of about 40; the reference from one process, one thread."""
    args = ["--fps", "80", "--codec", "ffv1", "--segment-seconds", "0.5"]
    out = cut_clip.parent / "long.mkv"
    res = cli(str(cut_clip), "-o", str(out), "--fps", "80", "--codec", "ffv1", "--threads", "1", "-q", env=model_env)
    assert res.returncode == 0, res.stderr
    return args, frames(out)


def test_a_killed_worker_is_started_again(cut_clip: Path, tmp_path: Path, model_env: dict[str, str],
                                          long_job: tuple[list[str], list[bytes]]) -> None:
    args, expected = long_job
    out = tmp_path / "o.mkv"
    parts = tmp_path / ".o.mkv.parts"
    proc = subprocess.Popen([sys.executable, "-m", "vs_superslomo", str(cut_clip), "-o", str(out), "--workers", "2",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **model_env})
    deadline = time.monotonic() + 300
    killed = None
    while killed is None:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        if parts.is_dir() and [p for p in parts.iterdir() if ".part" in p.name]:  # a worker is encoding
            for pid in _render_workers(parts):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
                    break
                except ProcessLookupError:
                    continue
        time.sleep(0.05)
    assert not out.exists()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "was killed by SIGKILL; starting it again (attempt 2 of 3)" in err
    assert frames(out) == expected
    assert not parts.exists()


def test_interrupted_render_resumes_only_the_missing_segments(
        cut_clip: Path, tmp_path: Path, model_env: dict[str, str], long_job: tuple[list[str], list[bytes]]) -> None:
    args, expected = long_job
    out = tmp_path / "o.mkv"
    parts = tmp_path / ".o.mkv.parts"
    command = [sys.executable, "-m", "vs_superslomo", str(cut_clip), "-o", str(out), "--workers", "1", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **model_env})
    deadline = time.monotonic() + 300
    while not (parts.is_dir() and list(parts.glob("seg-*.mkv"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"vs-superslomo: interrupted; no output written; the finished segments "
                                            f"are kept in {parts} (the same command with --resume continues)")
    assert not out.exists() and _render_workers(parts) == []
    kept = sorted(parts.glob("seg-*.mkv"))
    assert 1 <= len(kept) < 5

    again = cli(str(cut_clip), "-o", str(out), "--workers", "1", *args, env=model_env)
    assert again.returncode == 2 and "add --resume" in again.stderr and len(again.stderr.splitlines()) == 1
    other = cli(str(cut_clip), "-o", str(out), "--workers", "1", *args[2:], "--fps", "50", "--resume", env=model_env)
    assert other.returncode == 2 and "other settings (settings.options.fps: '80' then, '50' now)" in other.stderr
    assert sorted(parts.glob("seg-*.mkv")) == kept

    res = cli(str(cut_clip), "-o", str(out), "--workers", "2", *args, "--resume", env=model_env)
    assert res.returncode == 0, res.stderr
    missing = 5 - len(kept)
    assert f"resuming: {len(kept)} of 5 segments are done, rendering {missing}" in res.stderr
    assert re.search(rf"rendered {missing} of 5 segments \(\d+ frames\) with 2 worker", res.stderr), res.stderr
    assert frames(out) == expected
    assert not parts.exists()


@pytest.mark.parametrize(("args", "message"),
                         [(["--workers", "0"], "--workers must be at least 1"),
                          (["--workers", "2", "--ray"], "give --workers or --ray, not both"),
                          (["--resume"], "--resume continues a render of --workers or --ray"),
                          (["--workers", "2", "--segment-seconds", "0"], "--segment-seconds 0.0"),
                          (["--workers", "2", "--threads", "0"], "threads must be at least 1"),
                          (["--ray", "127.0.0.2:PORT"], "no Ray cluster answers there")])
def test_bad_render_options_give_one_line(cut_clip: Path, tmp_path: Path, model_env: dict[str, str],
                                          args: list[str], message: str) -> None:
    args = [a.replace("PORT", str(_free_port())) for a in args]
    res = cli(str(cut_clip), "-o", str(tmp_path / "o.mkv"), "--codec", "ffv1", *args, env=model_env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip() == res.stderr.strip().splitlines()[0]
    assert res.stderr.startswith("vs-superslomo: error: ") and message in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


# Ray: a head and a second node on this machine, every address on the loopback: the head is 127.0.0.2, the
# second node 127.0.0.3 (Ray rewrites 127.0.0.1 and localhost into the machine's network address, and then
# its processes talk through that address; other loopback addresses it leaves alone).


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(ip: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(VENV_BIN / "ray"), "start", "--block", "--node-ip-address", ip,
                                 "--num-cpus", "1", "--object-store-memory", "100000000", "--disable-usage-stats",
                                 "--dashboard-agent-listen-port", str(_free_port()), *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _in_sessions(sessions: set[int]) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getsid(int(proc.name)) in sessions:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _stop_nodes(nodes: list[subprocess.Popen[bytes]]) -> None:
    """What `ray stop` does, for our own nodes only: each started in a session of its own, all of which ends."""
    sessions = {node.pid for node in nodes}
    for node in reversed(nodes):
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGTERM)  # the node drains and stops its processes
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and [n for n in nodes if n.poll() is None]:
        time.sleep(0.5)
    for pid in _in_sessions(sessions):  # what is left after the grace period
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for node in nodes:
        node.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _in_sessions(sessions) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _in_sessions(sessions) == []


def _wait_for_nodes(address: str, nodes: list[subprocess.Popen[bytes]], log: Path) -> None:
    code = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.monotonic() + 120
    while True:
        assert all(node.poll() is None for node in nodes), log.read_text()[-2000:]
        res = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=120)
        if res.returncode == 0 and res.stdout.strip().splitlines()[-1] == str(len(nodes)):
            return
        assert time.monotonic() < deadline, res.stderr + log.read_text()[-2000:]
        time.sleep(1)


@pytest.fixture
def ray_cluster() -> Iterator[tuple[str, set[int]]]:
    """The cluster's address, and the sessions of its nodes (every process of the cluster is in one)."""
    port = _free_port()
    address = f"127.0.0.2:{port}"
    temp = Path(tempfile.mkdtemp(prefix="vsr-"))  # short: Ray's socket paths live under it
    nodes = []
    try:
        nodes.append(_start_node("127.0.0.2", ["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir",
                                  str(temp / "ray")], temp / "head.log"))
        _wait_for_nodes(address, nodes, temp / "head.log")
        nodes.append(_start_node("127.0.0.3", ["--address", address], temp / "node.log"))
        _wait_for_nodes(address, nodes, temp / "node.log")
        yield address, {node.pid for node in nodes}
    finally:
        _stop_nodes(nodes)
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _kill_a_worker(sessions: set[int], proc: subprocess.Popen[str]) -> None:
    """SIGKILL the first render worker process that runs in the cluster (a Ray task's child)."""
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        for pid in _in_sessions(sessions):
            try:
                if b"vs_superslomo.render_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
                    return
            except (OSError, ProcessLookupError):
                continue
        time.sleep(0.05)


def test_ray_tasks_on_two_nodes_give_the_frames_of_one_worker(
        cut_clip: Path, tmp_path: Path, model_env: dict[str, str], one_worker: tuple[Path, list[bytes]],
        ray_cluster: tuple[str, set[int]]) -> None:
    _, expected = one_worker
    address, sessions = ray_cluster
    out = tmp_path / "ray.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "vs_superslomo", str(cut_clip), "-o", str(out), "--fps", "25",
                             "--ray", address, *FFV1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **model_env})
    _kill_a_worker(sessions, proc)  # Ray runs its task again
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    nodes = re.search(r"rendered 5 of 5 segments \(53 frames\) on (\d+) Ray node\(s\) \(([0-9a-f, ]+)\)", err)
    assert nodes, err
    assert nodes.group(1) == "2" and len(set(nodes.group(2).split(", "))) == 2  # two node ids ran tasks
    assert frames(out) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ray.mkv"]
