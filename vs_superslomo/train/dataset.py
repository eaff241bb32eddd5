"""Training batches (real windows and synthetic motion) and the fixed validation set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..methods import ValidationItem
from . import sources
from .synthetic import MotionRanges, PhotoBank, Scene, random_scene, synthetic_sample

# The validation set is fixed by this seed (synthetic scenes) and by the clip-level split in sources.
VALIDATION_SEED = 20261125
# Every tenth photograph (in sorted path order) is kept out of training for synthetic validation.
HELD_OUT_PHOTO_EVERY = 10


def _load_rgb(path: Path, max_side: int) -> np.ndarray:
    img: Image.Image = Image.open(path).convert("RGB")
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def _load_rgba(path: Path, max_side: int) -> np.ndarray | None:
    img: Image.Image = Image.open(path)
    if img.mode not in ("RGBA", "LA", "P"):
        return None
    img = img.convert("RGBA")
    bbox = img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if bbox is None:
        return None
    img = img.crop(bbox)
    if min(img.size) < 24:
        return None
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def photo_bank(split: str, max_photos: int | None = None, max_cutouts: int | None = None) -> PhotoBank:
    """Photos for ``split`` ("train" or "val"); cut-out stamps only for training."""
    paths = sorted(sources.photo_paths())
    chosen = [p for i, p in enumerate(paths) if (i % HELD_OUT_PHOTO_EVERY == 0) == (split == "val")]
    photos = [_load_rgb(p, 768) for p in chosen[:max_photos]]
    cutouts: list[np.ndarray] = []
    if split == "train":
        for p in sorted(sources.stamp_paths())[:max_cutouts]:
            c = _load_rgba(p, 256)
            if c is not None:
                cutouts.append(c)
    return PhotoBank(photos, cutouts)


def _to_tensor(frame: np.ndarray) -> Tensor:
    # a copy: the frame cache is memory-mapped read-only, and torch warns about non-writable arrays
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1).float() / 255


@dataclass
class RealWindows:
    """Random windows of consecutive frames from real (or rendered) training clips."""

    clips: list[tuple[np.ndarray, list[tuple[int, int]]]]

    @classmethod
    def load(cls, kinds: tuple[str, ...]) -> RealWindows:
        clips = []
        for clip in sources.CLIPS:
            if clip.split not in kinds:
                continue
            ranges = sources.shots(clip, "train")
            if ranges:
                clips.append((sources.clip_frames(clip), ranges))
        return cls(clips)

    def sample(self, rng: np.random.Generator, size: int) -> dict[str, Tensor]:
        length = int(rng.choice([3, 3, 5, 9]))  # t = 1/2, k/4 and k/8 as in the paper's windows
        while True:
            frames, ranges = self.clips[rng.integers(len(self.clips))]
            usable = [r for r in ranges if r[1] - r[0] >= length]
            if usable:
                break
            length = 3
        start, end = usable[rng.integers(len(usable))]
        first = int(rng.integers(start, end - length + 1))
        k = int(rng.integers(1, length - 1))
        window = [_to_tensor(frames[first + j]) for j in (0, k, length - 1)]
        t = k / (length - 1)
        stack = torch.stack(window)  # (3, 3, H, W)
        h, w = stack.shape[-2:]
        scale = rng.uniform(0.5, 1.0) if min(h, w) * 0.5 >= size else 1.0
        scale = max(scale, size / min(h, w))
        if abs(scale - 1.0) > 1e-3:
            stack = F.interpolate(stack, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
        h, w = stack.shape[-2:]
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        stack = stack[..., y : y + size, x : x + size]
        if rng.random() < 0.5:
            stack = stack.flip(-1)
        if rng.random() < 0.2:
            stack = stack.flip(-2)
        if rng.random() < 0.5:
            stack, t = stack.flip(0), 1 - t
        empty = torch.zeros(2, size, size)
        return {"i0": stack[0], "it": stack[1], "i1": stack[2], "t": torch.tensor(t), "f01": empty,
                "f10": empty, "v01": empty[0], "v10": empty[0], "has_flow": torch.tensor(0.0)}


def collate(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def windows(name: str, frames: np.ndarray, factor: int, count: int, span: tuple[int, int] | None = None,
            distinct: bool = False, step: int = 1) -> list[ValidationItem]:
    """``count`` evenly spaced windows of ``factor + 1`` frames within ``span`` of (T, H, W, 3) uint8 frames,
    taking every ``step``-th frame (``step`` 2 turns a 25 fps clip into 12.5 fps): the first and last frames
    are the inputs, the ones between are the targets. ``distinct`` drops windows that coincide (short
    spans); a span too short for one window gives none. Each window carries the inputs one window before and
    after it where the span has them (quadratic motion uses them)."""
    start, end = span or (0, len(frames))
    reach = factor * step  # frames from a window's first input to its last
    if end - start <= reach:
        return []
    firsts = np.linspace(start, end - reach - 1, count).round().astype(int)
    if distinct:
        firsts = np.unique(firsts)
    items = []
    for first in firsts:
        f = [_to_tensor(frames[first + j * step]) for j in range(factor + 1)]
        before = _to_tensor(frames[first - reach]) if first - reach >= start else None
        after = _to_tensor(frames[first + 2 * reach]) if first + 2 * reach < end else None
        items.append(ValidationItem(name, f[0], f[-1], f[1:-1], [j / factor for j in range(1, factor)], before, after))
    return items


def real_validation(factor: int, windows_per_clip: int = 6, step: int = 1) -> list[ValidationItem]:
    """Evenly spaced windows of ``factor + 1`` frames (every ``step``-th frame) from the held-out clips; the
    middle ones are dropped. With ``step`` > 1 a clip's name carries the step (``city/2``)."""
    items = []
    for clip in sources.CLIPS:
        name = clip.name if step == 1 else f"{clip.name}/{step}"
        for span in sources.shots(clip, "val"):
            items += windows(name, sources.clip_frames(clip), factor, windows_per_clip, span, step=step)
    return items


def _validation_scenes(factor: int, count: int, size: int) -> Iterator[Scene]:
    """The fixed synthetic validation scenes from held-out photos (seeded by VALIDATION_SEED).

    Scenes where nothing moves by a pixel are drawn again: they test no interpolation, and blending
    reproduces a pure brightness ramp exactly, a capped 100 dB that would outweigh every other scene
    in the mean.
    """
    bank = photo_bank("val")
    rng = np.random.default_rng(VALIDATION_SEED + factor)
    ranges = MotionRanges(max_shift=32.0, noise=0.0)
    found = 0
    while found < count:
        scene = random_scene(bank, rng, size, ranges)
        if float(scene.flow(0.0, 1.0).abs().max()) < 1.0:
            continue
        found += 1
        yield scene


def synthetic_validation(factor: int, count: int = 12, size: int = 256) -> list[ValidationItem]:
    """The synthetic validation scenes' frames: inputs at 0 and 1, targets at the ``factor``-th steps."""
    items = []
    for scene in _validation_scenes(factor, count, size):
        frames = [scene.render(j / factor)[0] for j in range(factor + 1)]
        items.append(ValidationItem("synthetic", frames[0], frames[-1], frames[1:-1],
                                    [j / factor for j in range(1, factor)]))
    return items


@dataclass
class FlowItem:
    """Two frames, the true flow F0->1 and where it is valid (content visible in both frames)."""

    frame0: Tensor  # (3, H, W)
    frame1: Tensor
    flow: Tensor  # (2, H, W) pixels
    valid: Tensor  # (H, W) 0 or 1


def synthetic_flow_validation(factor: int = 2, count: int = 12, size: int = 256) -> list[FlowItem]:
    """The flow labels of the same scenes as ``synthetic_validation(factor)``."""
    return [FlowItem(scene.render(0.0)[0], scene.render(1.0)[0], scene.flow(0.0, 1.0), scene.visible(0.0, 1.0))
            for scene in _validation_scenes(factor, count, size)]


class TrainingBatches:
    """Mixes synthetic samples with real windows; rendered clips are at most a fifth of real samples."""

    def __init__(self, size: int, synthetic_fraction: float, ranges: MotionRanges,
                 max_cutouts: int | None = None) -> None:
        self.size = size
        self.synthetic_fraction = synthetic_fraction
        self.ranges = ranges
        self.bank = photo_bank("train", max_cutouts=max_cutouts)
        self.real = RealWindows.load(("train",))
        self.rendered = RealWindows.load(("rendered",))

    def sample(self, rng: np.random.Generator) -> dict[str, Tensor]:
        if rng.random() < self.synthetic_fraction:
            return synthetic_sample(self.bank, rng, self.size, self.ranges)
        if self.rendered.clips and rng.random() < 0.15:
            return self.rendered.sample(rng, self.size)
        return self.real.sample(rng, self.size)

    def batch(self, rng: np.random.Generator, count: int) -> dict[str, Tensor]:
        return collate([self.sample(rng) for _ in range(count)])
