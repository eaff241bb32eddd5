"""`python -m vs_superslomo.render_worker`: one range of output frames into one verified segment file.

    python -m vs_superslomo.render_worker --first A --end B --segment SEG.mkv --args ARGS

``ARGS`` is the CLI's parsed command line (base64 of its pickle, written by vs_superslomo.render); the
worker builds the graph with the CLI's own function from it, takes frames [A, B) and encodes them with
the output's codec settings, without audio. Stdout carries ``frames N`` progress lines; a segment
appears at ``SEG`` only when complete and holding B - A frames. Exit codes: 0 done, 2 bad input (the
same for every attempt: not retried), anything else a failure worth retrying.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .media import PROG, UserError
from .segments import decode_args, finish_segment

PROGRESS_EVERY = 4  # frames between progress lines


def _die_with_parent() -> None:
    """Linux: exit when the process that started us dies (a killed Ray worker, a killed CLI)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _limit_threads(threads: int) -> None:
    """VapourSynth's and OpenCV's threads too (the network's are the ``threads`` option); frames do not change."""
    import cv2
    import vapoursynth as vs

    vs.core.num_threads = threads
    cv2.setNumThreads(threads)


def _render(job: Any, first: int, end: int, part: Path) -> None:
    clip = job.out[first:end]
    encoder = subprocess.Popen(job.encoder_command(part, segment=True), stdin=subprocess.PIPE)
    assert encoder.stdin is not None

    def progress(done: int, total: int) -> None:
        if done % PROGRESS_EVERY == 0 or done == total:
            print(f"frames {done}", flush=True)

    try:
        clip.output(encoder.stdin, y4m=True, progress_update=progress)
        encoder.stdin.close()
    except BrokenPipeError:
        raise UserError("the encoder (ffmpeg) stopped before all frames were written") from None
    if encoder.wait() != 0:
        raise RuntimeError("the encoder (ffmpeg) failed")


def render_range(args: argparse.Namespace, first: int, end: int, segment: Path) -> None:
    from .cli import prepare

    fd, name = tempfile.mkstemp(prefix=f".{segment.stem}.", suffix=f".part{segment.suffix}", dir=segment.parent)
    os.close(fd)
    part = Path(name)
    try:
        _limit_threads(args.threads or 1)
        args.output = segment  # the graph does not depend on it; checks see a folder this node can write
        job = prepare(args)
        if not 0 <= first < end <= job.out.num_frames:
            raise UserError(f"frames {first}-{end}: the output has {job.out.num_frames} frames")
        _render(job, first, end, part)
        finish_segment(part, segment, end - first)
    finally:
        part.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} render_worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    p.add_argument("--segment", type=Path, required=True)
    p.add_argument("--args", required=True)
    p.add_argument("--index", type=Path, help="the input's bestsource index (path without .N.bsindex)")
    opts = p.parse_args(argv)
    _die_with_parent()
    try:
        args = decode_args(opts.args)
        args.index = opts.index or getattr(args, "index", None)
        render_range(args, opts.first, opts.end, opts.segment)
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
