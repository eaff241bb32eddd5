"""Video files and folders of images as (T, H, W, 3) uint8 RGB arrays (ffmpeg from imageio-ffmpeg, Pillow)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".bmp", ".tif", ".tiff")


def decode_video(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    if path.suffix == ".gz":
        plain = path.with_suffix("")
        if not plain.exists():
            with gzip.open(path) as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
        path = plain
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = reader.__next__()
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
    return np.stack(frames)


def decode_stills(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return np.stack(frames)
