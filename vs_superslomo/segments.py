"""The work folder of a parallel render: verified segment files and the manifest of the job's settings.

``.OUT.parts/`` beside the output holds ``manifest.json`` (the settings, the input's and the model's
identity, the ranges) and one file per finished range, ``seg-FIRST-END.ext``. A segment is written under
a temporary name and renamed only after its frame count was checked, so a file with a segment's name is
a finished segment; anything else (``.*.part*`` files of a killed worker) is removed on resume.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .atomic_output import real_target
from .media import UserError, ffmpeg_exe

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
# Options that change how the job runs, not its bytes.
RUN_OPTIONS = ("workers", "ray", "resume", "quiet", "output", "index")
INDEX = "input"  # bestsource's index of the input: input.N.bsindex


def count_frames(path: Path) -> int:
    """Video packets in the file's first video stream (one per frame for our codecs); -1 if unreadable."""
    res = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                          "-f", "framecrc", "-"], capture_output=True, text=True)
    if res.returncode != 0:
        return -1
    return sum(1 for line in res.stdout.splitlines() if line and not line.startswith("#"))


def segment_name(first: int, end: int, suffix: str) -> str:
    return f"seg-{first:09d}-{end:09d}{suffix}"


def finish_segment(part: Path, final: Path, frames: int) -> None:
    """Rename a written segment onto its name if it holds ``frames`` frames."""
    found = count_frames(part)
    if found != frames:
        part.unlink(missing_ok=True)
        raise UserError(f"{final.name}: the encoder wrote {found} frames, {frames} expected")
    os.replace(part, final)


def _file_identity(path: Path, digest: bool) -> dict[str, Any]:
    stat = path.stat()
    identity: dict[str, Any] = {"path": str(path.resolve()), "size": stat.st_size}
    if digest:
        with path.open("rb") as f:
            identity["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
    else:
        identity["mtime_ns"] = stat.st_mtime_ns
    return identity


def job_settings(args: Any, model: Path) -> dict[str, Any]:
    """Everything that decides the output's bytes: options, the input file, the model's content."""
    from . import __version__

    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())
               if k not in RUN_OPTIONS}
    return {"version": __version__, "options": options, "input": _file_identity(args.input, digest=False),
            "model": _file_identity(model, digest=True)}


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    for key in sorted(set(old) | set(new), key=lambda k: (k != "settings", k)):  # the cause before the ranges
        if old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                return f"{key}.{_difference(old[key], new[key])}"
            return f"{key}: {old.get(key)!r} then, {new.get(key)!r} now"
    return "?"


class WorkFolder:
    """``.OUT.parts/`` for the output ``target``."""

    def __init__(self, output: Path) -> None:
        target = real_target(output)
        self.path = target.parent / f".{target.name}.parts"
        self.suffix = target.suffix

    def segment(self, first: int, end: int) -> Path:
        return self.path / segment_name(first, end, self.suffix)

    def part_file(self, first: int, end: int) -> Path:
        """A new temporary file for the segment (a unique name: a killed attempt's file is not reused)."""
        fd, name = tempfile.mkstemp(prefix=f".{segment_name(first, end, '')}.", suffix=f".part{self.suffix}",
                                    dir=self.path)
        os.close(fd)
        return Path(name)

    def open(self, settings: dict[str, Any], ranges: list[tuple[int, int]], resume: bool) -> list[tuple[int, int]]:
        """Creates the folder, or checks the earlier job's manifest on --resume; returns the ranges to render."""
        manifest = {"manifest_version": MANIFEST_VERSION, "settings": settings, "ranges": [list(r) for r in ranges]}
        if self.path.exists() and not resume and not self.finished_segments():
            self.remove()  # an earlier start that finished nothing
        if self.path.exists() and not resume:
            raise UserError(f"{self.path} holds the segments of an unfinished render of this output: add --resume "
                            "to continue it, or remove the folder to start again")
        if self.path.exists():
            self._check_manifest(manifest)
            for stale in self.path.glob(".*.part*"):
                stale.unlink()
        else:
            try:
                self.path.mkdir()
            except OSError as e:
                raise UserError(f"{self.path}: cannot create the work folder ({e.strerror})") from None
            self._write_manifest(manifest)
        return [r for r in ranges if not self._finished(*r)]

    def _check_manifest(self, manifest: dict[str, Any]) -> None:
        try:
            old = json.loads((self.path / MANIFEST).read_text())
        except (OSError, ValueError):
            raise UserError(f"{self.path}: no readable {MANIFEST}; remove the folder to start again") from None
        if old != manifest:
            raise UserError(f"--resume: {self.path} is a render with other settings ({_difference(old, manifest)}); "
                            "give the same options, or remove the folder to start again")

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        part = self.path / f".{MANIFEST}.part"
        part.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(part, self.path / MANIFEST)

    def _finished(self, first: int, end: int) -> bool:
        path = self.segment(first, end)
        if not path.exists():
            return False
        if count_frames(path) == end - first:
            return True
        path.unlink()  # cannot happen with our renames, but a damaged file is rendered again
        return False

    def concat_list(self, ranges: list[tuple[int, int]], fps: tuple[int, int]) -> Path:
        """An ffconcat list of the segments, each with its exact duration."""
        lines = ["ffconcat version 1.0"]
        for first, end in ranges:
            lines += [f"file '{segment_name(first, end, self.suffix)}'",
                      f"duration {(end - first) * fps[1] / fps[0]:.9f}"]
        path = self.path / "segments.ffconcat"
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def index(self) -> Path:
        """Where the input's bestsource index is kept, so that workers do not index the input again."""
        return self.path / INDEX

    def index_files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.path.glob(f"{INDEX}.*.bsindex")}

    def finished_segments(self) -> list[Path]:
        return sorted(self.path.glob(segment_name(0, 0, self.suffix).replace("0", "[0-9]")))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def encode_args(args: Any) -> str:
    """The CLI's parsed arguments for a worker's command line (our own processes and Ray tasks only)."""
    return base64.b64encode(pickle.dumps(args)).decode()


def decode_args(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))
