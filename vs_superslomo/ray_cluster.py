"""``--ray``: the ranges of a render as Ray tasks on a cluster (the only module that imports Ray).

Each task runs ``python -m vs_superslomo.render_worker`` on its node into a temporary folder there and
returns the finished segment's bytes through Ray's object store; the machine running the CLI writes it
into the work folder. So the nodes need vs-superslomo (same version) and read access to the input and
the model at the same paths, and no shared storage for the output. A worker process that dies fails its
task, and Ray runs it again (``max_retries``); a task whose node dies is retried by Ray alike.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .media import PROG, UserError
from .segments import INDEX, WorkFolder, finish_segment, segment_name

MAX_RETRIES = 2  # 3 attempts per range, as with local workers
REPORT_EVERY = 0.5  # s between a task's progress reports
CONNECT_TIMEOUT = 10  # s


class WorkerDied(Exception):
    """The worker process of a task failed (killed, crashed): Ray runs the task again."""


class RangeRefused(Exception):
    """The worker refused its input or options: every attempt would, so Ray does not retry."""


class ProgressBoard:
    """A Ray actor (no CPU): frames done per range, reported by the tasks, read by the CLI."""

    def __init__(self) -> None:
        self.done: dict[tuple[int, int], int] = {}

    def report(self, key: tuple[int, int], frames: int) -> None:
        self.done[key] = frames

    def snapshot(self) -> dict[tuple[int, int], int]:
        return dict(self.done)


def _worker_output(proc: subprocess.Popen[str], key: tuple[int, int], board: Any) -> None:
    assert proc.stdout is not None
    last = 0.0
    for line in proc.stdout:
        if line.startswith("frames ") and time.monotonic() - last > REPORT_EVERY:
            last = time.monotonic()
            board.report.remote(key, int(line.split()[1]))


def render_range(job_args: str, first: int, end: int, suffix: str, board: Any, env: dict[str, str],
                 index: dict[str, bytes]) -> tuple[bytes, str]:
    """The Ray task: one range rendered on this node; the segment's bytes and this node's id."""
    import ray

    with tempfile.TemporaryDirectory(prefix="vs-superslomo-") as folder, tempfile.TemporaryFile("w+") as errors:
        segment = Path(folder) / segment_name(first, end, suffix)
        for name, data in index.items():  # the input's index from the CLI: no decoding pass here
            (Path(folder) / name).write_bytes(data)
        command = [sys.executable, "-m", "vs_superslomo.render_worker", "--first", str(first), "--end", str(end),
                   "--segment", str(segment), "--args", job_args, "--index", str(Path(folder) / INDEX)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env={**os.environ, **env})
        _worker_output(proc, (first, end), board)
        rc = proc.wait()
        errors.seek(0)
        lines = [line.strip() for line in errors.read().splitlines() if line.strip()]
        why = lines[-1].removeprefix(f"{PROG}: error: ") if lines else f"exit code {rc}"
        if rc == 2:
            raise RangeRefused(f"frames {first}-{end}: {why}")
        if rc != 0:
            raise WorkerDied(f"frames {first}-{end}: the worker failed ({why})")
        return segment.read_bytes(), ray.get_runtime_context().get_node_id()


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for ever: try its port first (``auto`` is Ray's to resolve)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise UserError(f"--ray {address}: no Ray cluster answers there ({e.strerror or e})") from None


def _connect(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'vs-superslomo[cluster]'") from None
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--ray {address}: cannot connect to a Ray cluster ({reason})") from None
    return ray


def _result(ray: Any, ref: Any) -> tuple[bytes, str]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if isinstance(e.cause, RangeRefused | WorkerDied) else e
        raise UserError(str(cause).strip().splitlines()[-1]) from None
    except ray.exceptions.RayError as e:
        raise UserError(f"a Ray task failed: {str(e).strip().splitlines()[0]}") from None


def render_on_ray(address: str, folder: WorkFolder, job_args: str, todo: list[tuple[int, int]], threads: int,
                  progress: Any) -> dict[tuple[int, int], str]:
    """Renders ``todo`` on the cluster into ``folder``; returns the node id that rendered each range."""
    ray = _connect(address)
    env = {k: v for k, v in os.environ.items() if k.startswith("VS_SUPERSLOMO_")}
    try:
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        task = ray.remote(render_range).options(num_cpus=threads, max_retries=MAX_RETRIES,
                                                retry_exceptions=[WorkerDied])
        index = ray.put(folder.index_files())
        refs = {task.remote(job_args, first, end, folder.suffix, board, env, index): (first, end)
                for first, end in todo}
        nodes: dict[tuple[int, int], str] = {}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=REPORT_EVERY)
            for key, frames in ray.get(board.snapshot.remote()).items():
                if key not in nodes:
                    progress.report(key, frames)
            for ref in ready:
                first, end = refs.pop(ref)
                data, nodes[(first, end)] = _result(ray, ref)
                part = folder.part_file(first, end)
                part.write_bytes(data)
                finish_segment(part, folder.segment(first, end), end - first)
                progress.report((first, end), end - first)
            progress.refresh()
        return nodes
    finally:
        ray.shutdown()
