"""`make demo`: a real clip through examples/slowmo_x4.vpy and vspipe into an H.264 file, then
through the CLI (25 -> 50 fps) and its comparison picture.

The clip is the 2-second CC0 excerpt shipped in examples/media/ (a city skyline pan from Kivy's
examples, see examples/media/README.md), so the demo needs no download and no package manager.

    python examples/demo.py [--out DIR]      # default: $VS_SUPERSLOMO_DEMO_OUT, else out/ in the repository
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg

from vs_superslomo.checkpoint import default_model_path, provenance_of

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "examples" / "media" / "city_cc0_2s.mkv"
OUT_ENV_VAR = "VS_SUPERSLOMO_DEMO_OUT"


def _child_env() -> dict[str, str]:
    """The environment for vspipe and the CLI: this interpreter's bin folder first on the PATH.

    vspipe finds its Python through ``~/.config/vapoursynth/vapoursynth.toml``; in a fresh home that
    file is missing and VSScript runs ``vapoursynth config`` from the PATH to write it, which works
    only when the virtual environment's ``vapoursynth`` command is found there.
    """
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get(OUT_ENV_VAR) or ROOT / "out"),
                        help=f"output folder (default: ${OUT_ENV_VAR}, else out/ in the repository)")
    args = parser.parse_args(argv)
    out: Path = args.out

    model = default_model_path()
    if not model.exists():
        print(f"error: no default model at {model}", file=sys.stderr)
        return 1
    steps = provenance_of(model).get("steps", "?")
    print(f"model: {model.name} ({steps} training steps)", file=sys.stderr)
    if not CLIP.exists():
        print(f"error: the demo clip {CLIP} is missing (it is part of the repository)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    env = _child_env()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()

    target = out / "city_slowmo_x4.mp4"
    tmp = target.with_suffix(".part.mp4")
    vspipe = Path(sys.executable).parent / "vspipe"
    progress = ["-p"] if sys.stderr.isatty() else []
    started = time.monotonic()
    pipe = subprocess.Popen([str(vspipe), *progress, "-c", "y4m", "--arg", f"src={CLIP}",
                             str(ROOT / "examples/slowmo_x4.vpy"), "-"], stdout=subprocess.PIPE, env=env)
    enc = subprocess.run([ffmpeg, "-v", "error", "-y", "-i", "-", "-c:v", "libx264", "-crf", "18", "-preset", "fast",
                          "-pix_fmt", "yuv420p", str(tmp)], stdin=pipe.stdout, env=env)
    assert pipe.stdout is not None
    pipe.stdout.close()
    if pipe.wait() != 0 or enc.returncode != 0:
        tmp.unlink(missing_ok=True)
        print("error: the vspipe | ffmpeg pipeline failed", file=sys.stderr)
        return 1
    tmp.replace(target)
    print(f"wrote {target} (4x slow motion of {CLIP.name}, {time.monotonic() - started:.0f} s)", file=sys.stderr)

    # The same through the one-command CLI: 25 -> 50 fps, and a comparison picture.
    cli = [sys.executable, "-m", "vs_superslomo"]
    fps50 = out / "city_50fps.mp4"
    compare = out / "city_compare.png"
    started = time.monotonic()
    if subprocess.run([*cli, str(CLIP), "-o", str(fps50), "--fps", "50", "--quiet"], env=env).returncode != 0:
        return 1
    print(f"wrote {fps50} (25 -> 50 fps, {time.monotonic() - started:.0f} s)", file=sys.stderr)
    if subprocess.run([*cli, "compare", str(CLIP), "--at", "1.0", "-o", str(compare)], env=env).returncode != 0:
        return 1
    print(f"wrote {compare} (source frames, blending and ours side by side)", file=sys.stderr)
    print(f"outputs in {out.resolve()}:", file=sys.stderr)
    for path in (target, fps50, compare):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
