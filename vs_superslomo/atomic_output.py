"""Output files that appear only when complete, with the permissions ffmpeg would have given them.

The file is written under a hidden temporary name beside its target and renamed onto it at the end.
Until then, any terminating signal (Ctrl-C, ``kill``, ``timeout``, a closed terminal) stops the
encoder, removes the temporary file and exits at once with one line.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .media import PROG, UserError

TERMINATING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def interrupted_message(signum: int) -> str:
    name = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    return f"{PROG}: {name}; no output written"


def current_umask() -> int:
    try:  # Linux shows it without changing it (os.umask would briefly affect other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode(target: Path) -> int:
    """An existing file keeps its mode (ffmpeg truncates it in place); a new one gets 0666 & ~umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def real_target(path: Path) -> Path:
    """Where writing ``path`` lands: a symlink is written through, so the link stays a link."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_not_input(source: Path, output: Path) -> None:
    """Refuse an output that is the input file itself, however it is spelt (path, symlink, hard link)."""
    try:
        same = os.path.samefile(source, output)
    except OSError:  # one of them does not exist (yet)
        return
    if same:
        raise UserError(f"{output}: that is the input file; choose another output name")


class PartialOutput:
    """The temporary file being written, and the encoder writing it, for the signal handler."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.encoder: subprocess.Popen[bytes] | None = None
        self.note = ""  # said after "no output written" when stopped by a signal

    @property
    def file(self) -> Path:
        assert self.path is not None, "the temporary file is gone"
        return self.path

    def abandon(self) -> None:
        if self.encoder is not None and self.encoder.poll() is None:
            self.encoder.kill()
            self.encoder.wait()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@contextmanager
def exit_on_signals(partial: PartialOutput) -> Iterator[None]:
    """Any terminating signal removes the partial output and exits at once.

    Exiting from the handler avoids unwinding an exception through ``clip.output``, which once
    surfaced as a BrokenPipeError with the encoder still alive and waiting on its input.
    """

    def abort(signum: int, frame: Any) -> None:
        # `timeout` signals us twice (us, then its process group): a second handler run inside the
        # first deadlocked on the encoder's wait lock.
        for sig in TERMINATING_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        partial.abandon()
        print(interrupted_message(signum) + partial.note, file=sys.stderr, flush=True)
        os._exit(128 + signum)

    previous = {sig: signal.signal(sig, abort) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def temporary_output(target: Path) -> Iterator[PartialOutput]:
    """A temporary file beside ``target``, renamed onto it only if the block completes."""
    target = real_target(target)
    mode = output_mode(target)
    partial = PartialOutput()
    with exit_on_signals(partial):
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
        except OSError as e:
            raise UserError(f"{target}: cannot write in {target.parent} ({e.strerror})") from None
        partial.path = Path(name)
        try:
            os.fchmod(fd, mode)
            os.close(fd)
            yield partial
            os.replace(partial.path, target)
            partial.path = None
        finally:
            partial.abandon()
