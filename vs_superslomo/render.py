"""Rendering in ranges: ``--workers N`` local processes or ``--ray`` tasks, segments joined without re-encoding.

The output is cut into ranges of output frames (vs_superslomo.render_plan); each range is rendered by
``python -m vs_superslomo.render_worker`` (the CLI's own graph, frames [first, end), the output's codec
settings, no audio) into a verified segment in the work folder ``.OUT.parts/`` (vs_superslomo.segments).
A worker that dies is started again (3 attempts per range). When every segment is there, ffmpeg's concat
demuxer copies them into the output, with the audio muxed once, under the CLI's atomic-output rules; then
the work folder is removed. An interrupted render keeps its finished segments for ``--resume``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, Any

from .atomic_output import PartialOutput, exit_on_signals, temporary_output
from .media import PROG, UserError, notice, open_video
from .render_plan import plan_ranges
from .segments import WorkFolder, encode_args, job_settings

MAX_ATTEMPTS = 3  # per range: a worker that dies is started again this many times in all
WORKER_MODULE = "vs_superslomo.render_worker"


class RenderProgress:
    """One bar (or plain lines every 10% when stderr is a log) for the frames of every worker."""

    def __init__(self, total: int, already: int, quiet: bool) -> None:
        self.total, self.already, self.quiet = max(total, 1), already, quiet
        self.done: dict[tuple[int, int], int] = {}
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.reported = 10 * already // self.total
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=already, unit="frame", file=sys.stderr, dynamic_ncols=True,
                            desc="interpolating")

    def report(self, key: tuple[int, int], done: int) -> None:
        with self.lock:
            self.done[key] = done

    def frames(self) -> int:
        with self.lock:
            return self.already + sum(self.done.values())

    def eta(self, done: int) -> str:
        new = done - self.already
        if new <= 0:
            return "?"
        return f"{(time.monotonic() - self.started) / new * (self.total - done):.0f} s"

    def refresh(self) -> None:
        done = self.frames()
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif not self.quiet and 10 * done // self.total > self.reported:
            self.reported = 10 * done // self.total
            print(f"{PROG}: interpolating: {10 * self.reported}% ({done}/{self.total} frames, "
                  f"{time.monotonic() - self.started:.0f} s, ETA {self.eta(done)})", file=sys.stderr, flush=True)

    def say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(f"{PROG}: {message}", file=sys.stderr)
        elif not self.quiet:
            notice(message)

    def close(self) -> None:
        self.refresh()
        if self.bar is not None:
            self.bar.close()


class RunningWorkers(PartialOutput):
    """The worker processes alive now; a terminating signal kills them (each with its encoder) first."""

    def __init__(self, note: str) -> None:
        super().__init__()
        self.note = note
        self.procs: set[subprocess.Popen[str]] = set()
        self.stopping = False

    def kill_all(self) -> None:
        self.stopping = True
        for proc in list(self.procs):
            with contextlib.suppress(ProcessLookupError):  # its own process group: the worker and its ffmpeg
                os.killpg(proc.pid, signal.SIGKILL)

    def abandon(self) -> None:
        self.kill_all()
        super().abandon()


def _check_options(args: Any) -> None:
    if args.workers is None and args.ray is None:
        raise UserError("--resume continues a render of --workers or --ray: give the same options again")
    if args.workers is not None and args.ray is not None:
        raise UserError("give --workers or --ray, not both")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if not (math.isfinite(args.segment_seconds) and args.segment_seconds > 0):
        raise UserError(f"--segment-seconds {args.segment_seconds}: it must be a positive number of seconds")


def _failure(rc: int, errors: IO[str]) -> str:
    errors.seek(0)
    lines = [line.strip() for line in errors.read().splitlines() if line.strip()]
    last = lines[-1].removeprefix(f"{PROG}: error: ") if lines else ""
    how = f"was killed by {signal.Signals(-rc).name}" if rc < 0 else f"failed (exit code {rc})"
    return f"{how}{': ' + last if last else ''}"


class LocalPool:
    """Ranges rendered by up to ``workers`` worker processes at once, one process per range attempt."""

    def __init__(self, folder: WorkFolder, job_args: str, workers: int, progress: RenderProgress,
                 running: RunningWorkers) -> None:
        self.folder, self.job_args, self.workers = folder, job_args, workers
        self.progress, self.running = progress, running

    def _attempt(self, first: int, end: int) -> tuple[int, str]:
        command = [sys.executable, "-m", WORKER_MODULE, "--first", str(first), "--end", str(end),
                   "--segment", str(self.folder.segment(first, end)), "--args", self.job_args]
        with tempfile.TemporaryFile("w+") as errors:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, process_group=0)
            self.running.procs.add(proc)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("frames "):
                        self.progress.report((first, end), int(line.split()[1]))
                rc = proc.wait()
            finally:
                self.running.procs.discard(proc)
            return rc, _failure(rc, errors) if rc else ""

    def render(self, first: int, end: int) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self.running.stopping:
                return
            rc, why = self._attempt(first, end)
            if rc == 0:
                self.progress.report((first, end), end - first)
                return
            self.progress.report((first, end), 0)
            if rc == 2 or self.running.stopping:
                raise UserError(f"frames {first}-{end}: {why.partition(': ')[2] or why}")
            if attempt < MAX_ATTEMPTS:
                self.progress.say(f"the worker for frames {first}-{end} {why}; starting it again "
                                  f"(attempt {attempt + 1} of {MAX_ATTEMPTS})")
        raise UserError(f"frames {first}-{end}: the worker {why}, {MAX_ATTEMPTS} times")

    def run(self, ranges: list[tuple[int, int]]) -> None:
        pool = ThreadPoolExecutor(max_workers=self.workers)
        futures: list[Future[None]] = [pool.submit(self.render, *r) for r in ranges]
        try:
            pending: set[Future[None]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                self.progress.refresh()
                for future in done:
                    future.result()  # raises the first failure
        finally:
            if any(not f.done() for f in futures):
                self.running.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)


def _model_path(args: Any) -> Path:
    from .checkpoint import default_model_path

    return Path(args.model) if args.model else default_model_path()


def _join(job: Any, folder: WorkFolder, ranges: list[tuple[int, int]], note: str) -> None:
    """The segments copied into the output, audio muxed: nothing at the output path until complete."""
    joined = folder.concat_list(ranges, (job.out.fps_num, job.out.fps_den))
    with temporary_output(job.args.output) as partial:
        partial.note = note
        partial.encoder = encoder = subprocess.Popen(job.encoder_command(partial.file, joined=joined),
                                                     process_group=0)
        if encoder.wait() != 0:
            raise UserError("joining the segments (ffmpeg) failed; see its message above")


def _run(job: Any, folder: WorkFolder, todo: list[tuple[int, int]], progress: RenderProgress,
         running: RunningWorkers) -> str:
    """Renders the missing ranges; returns where they ran, for the closing line."""
    args = job.args
    if args.ray is not None:
        from .ray_cluster import render_on_ray

        nodes = render_on_ray(args.ray, folder, encode_args(args), todo, args.threads, progress)
        ids = sorted({node[:8] for node in nodes.values()})
        return f"on {len(ids)} Ray node(s) ({', '.join(ids)})"
    LocalPool(folder, encode_args(args), args.workers, progress, running).run(todo)
    return f"with {args.workers} worker process(es)"


def render(job: Any) -> None:
    """Renders ``job`` (a vs_superslomo.cli.Conversion) in ranges and joins them into its output."""
    args = job.args
    _check_options(args)
    args.threads = args.threads or 1  # part of the settings: another count may change a rare pixel
    args.input = args.input.absolute()  # workers and Ray tasks run in other folders
    args.model = str(Path(args.model).absolute()) if args.model else None
    folder = WorkFolder(args.output)
    ranges = plan_ranges(job, args.segment_seconds)
    todo = folder.open(job_settings(args, _model_path(args)), ranges, args.resume)
    open_video(args.input, folder.index)  # indexed once here (a decoding pass), read by every worker
    args.index = folder.index
    already = sum(end - first for first, end in ranges if (first, end) not in todo)
    note = f"; the finished segments are kept in {folder.path} (the same command with --resume continues)"
    if args.resume and not args.quiet:
        notice(f"resuming: {len(ranges) - len(todo)} of {len(ranges)} segments are done, rendering {len(todo)}")
    progress = RenderProgress(job.out.num_frames, already, args.quiet)
    running = RunningWorkers(note)
    try:
        with exit_on_signals(running):
            where = _run(job, folder, todo, progress, running)
    except UserError as e:
        if not folder.finished_segments():  # nothing to resume (e.g. no Ray cluster at that address)
            folder.remove()
            raise
        raise UserError(f"{e}{note}") from None
    finally:
        progress.close()
    _join(job, folder, ranges, note)
    folder.remove()
    if not args.quiet:
        notice(f"rendered {len(todo)} of {len(ranges)} segments ({job.out.num_frames - already} frames) {where}")
