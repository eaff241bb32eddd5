"""Synthetic motion with exact ground truth at any time t, from real photographs.

A scene is a stack of layers: a textured background under camera motion (pan, zoom, rotation)
and foreground objects (photographic cut-outs with soft mattes) moving along curved, accelerating
paths. Every layer follows one continuous placement A_t (texture pixel -> frame pixel), so frames
at any t, the flows between any two times and the occlusion masks all come from the same model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Placement:
    """Texture-to-frame mapping A_t(u) = c(t) + k(t) R(phi(t)) (u - anchor), in pixel units."""

    anchor: tuple[float, float]
    position: tuple[float, float]
    velocity: tuple[float, float]
    acceleration: tuple[float, float]
    angle: float = 0.0
    spin: float = 0.0
    spin_acceleration: float = 0.0
    log_scale: float = 0.0
    zoom: float = 0.0

    def matrix(self, t: float) -> np.ndarray:
        cx = self.position[0] + self.velocity[0] * t + 0.5 * self.acceleration[0] * t * t
        cy = self.position[1] + self.velocity[1] * t + 0.5 * self.acceleration[1] * t * t
        phi = self.angle + self.spin * t + 0.5 * self.spin_acceleration * t * t
        k = math.exp(self.log_scale + self.zoom * t)
        cos, sin = k * math.cos(phi), k * math.sin(phi)
        ax, ay = self.anchor
        return np.array(
            [[cos, -sin, cx - cos * ax + sin * ay], [sin, cos, cy - sin * ax - cos * ay], [0.0, 0.0, 1.0]]
        )


@dataclass(frozen=True)
class Ripple:
    """A smooth displacement field G(x) = sum_k a_k sin(w_k . x + p_k) in frame pixels.

    A layer with a ripple shows at time t the texture point A_t^-1(x + t G(x)): its content moves
    non-rigidly, and a batch carries many independent flow labels instead of one rigid motion per sample.
    The field's Lipschitz constant stays below 1/2, so x -> x + t G(x) is invertible and its inverse is
    found to float precision by fixed-point iteration: the labels stay exact.
    """

    amplitudes: np.ndarray  # (K, 2): component k's displacement vector
    frequencies: np.ndarray  # (K, 2): its wave vector (radians per pixel)
    phases: np.ndarray  # (K,)

    def at(self, points: np.ndarray) -> np.ndarray:
        """G at pixel coordinates (2, H, W)."""
        angle = np.einsum("kc,chw->khw", self.frequencies, points) + self.phases[:, None, None]
        return np.einsum("kc,khw->chw", self.amplitudes, np.sin(angle))

    def lipschitz(self) -> float:
        return float((np.linalg.norm(self.amplitudes, axis=1) * np.linalg.norm(self.frequencies, axis=1)).sum())

    def solve(self, target: np.ndarray, t: float, tolerance: float = 1e-7) -> np.ndarray:
        """The points y with y + t G(y) = target (2, H, W), to within ``tolerance`` pixels."""
        y = target
        if t == 0:
            return y
        # The iteration contracts by at most 0.45: the error is below the last step's size.
        for _ in range(100):
            y, previous = target - t * self.at(y), y
            if np.abs(y - previous).max() < tolerance:
                break
        return y


def random_ripple(rng: np.random.Generator, size: int, amplitude: float, components: int = 4) -> Ripple:
    """Up to ``amplitude`` pixels of displacement, in waves 0.5 to 2 frame sizes long, kept a contraction."""
    wavelength = size * rng.uniform(0.5, 2.0, components)
    direction = rng.uniform(0, 2 * math.pi, components)
    frequencies = np.stack((np.cos(direction), np.sin(direction)), axis=1) * (2 * math.pi / wavelength)[:, None]
    amplitudes = rng.normal(0, 1, (components, 2))
    amplitudes *= amplitude * rng.random() / max(np.linalg.norm(amplitudes, axis=1).sum(), 1e-9)
    ripple = Ripple(amplitudes, frequencies, rng.uniform(0, 2 * math.pi, components))
    lipschitz = ripple.lipschitz()
    if lipschitz > 0.45:
        ripple = Ripple(amplitudes * 0.45 / lipschitz, frequencies, ripple.phases)
    return ripple


@dataclass
class Layer:
    texture: Tensor  # (4, h, w) RGBA in [0, 1]; the background's alpha is 1 everywhere
    placement: Placement
    gain: float = 0.0  # brightness changes linearly: rgb * (1 + gain * t)
    ripple: Ripple | None = None


def _pixel_grid(h: int, w: int) -> np.ndarray:
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return np.stack((xs, ys, np.ones_like(xs)))  # (3, h, w)


def _apply(matrix: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jhw->ihw", matrix, grid)[:2]


def _sample(texture: Tensor, coords: np.ndarray, padding: str) -> Tensor:
    """Bilinear sample of texture (C, h, w) at pixel coordinates (2, H, W); pixel centres at integers."""
    _, h, w = texture.shape
    gx = (2 * coords[0] + 1) / w - 1
    gy = (2 * coords[1] + 1) / h - 1
    grid = torch.from_numpy(np.stack((gx, gy), axis=-1)).float().unsqueeze(0)
    return F.grid_sample(texture.unsqueeze(0), grid, mode="bilinear", padding_mode=padding, align_corners=False)[0]


class Scene:
    """Layers rendered into an H x W frame at any time t in [0, 1]."""

    def __init__(self, layers: list[Layer], height: int, width: int) -> None:
        self.layers = layers
        self.height = height
        self.width = width
        self._grid = _pixel_grid(height, width)
        # A training sample asks for the same frames and flows several times (flows and visibility read them)
        self._renders: dict[float, tuple[Tensor, Tensor]] = {}
        self._flows: dict[tuple[float, float], Tensor] = {}

    def _texture_coords(self, layer: Layer, t: float) -> np.ndarray:
        if layer.ripple is None:
            return _apply(np.linalg.inv(layer.placement.matrix(t)), self._grid)
        rippled = self._grid[:2] + t * layer.ripple.at(self._grid[:2])
        return _apply(np.linalg.inv(layer.placement.matrix(t)), np.concatenate((rippled, self._grid[2:])))

    def _moved(self, layer: Layer, ta: float, tb: float) -> np.ndarray:
        """Where the layer's content at each pixel at ta is at tb (2, H, W)."""
        coords = self._texture_coords(layer, ta)
        target = _apply(layer.placement.matrix(tb), np.concatenate((coords, self._grid[2:])))
        return target if layer.ripple is None else layer.ripple.solve(target, tb)

    def render(self, t: float) -> tuple[Tensor, Tensor]:
        """The RGB frame (3, H, W) at time t and the id of the top layer at each pixel (H, W)."""
        if t not in self._renders:
            self._renders[t] = self._render(t)
        rgb, ids = self._renders[t]
        return rgb.clone(), ids.clone()

    def _render(self, t: float) -> tuple[Tensor, Tensor]:
        rgb = torch.zeros(3, self.height, self.width)
        ids = torch.zeros(self.height, self.width, dtype=torch.long)
        for index, layer in enumerate(self.layers):
            padding = "reflection" if index == 0 else "zeros"
            rgba = _sample(layer.texture, self._texture_coords(layer, t), padding)
            alpha = rgba[3:4] if index else torch.ones_like(rgba[3:4])
            color = (rgba[:3] * (1 + layer.gain * t)).clamp(0, 1)
            rgb = rgb * (1 - alpha) + color * alpha
            ids[alpha[0] > 0.5] = index
        return rgb, ids

    def flow(self, ta: float, tb: float) -> Tensor:
        """Exact flow F_{ta->tb} (2, H, W): where the content at each pixel at ta is at tb."""
        if (ta, tb) not in self._flows:
            self._flows[ta, tb] = self._flow(ta, tb)
        return self._flows[ta, tb].clone()

    def _flow(self, ta: float, tb: float) -> Tensor:
        _, ids = self.render(ta)
        out = torch.zeros(2, self.height, self.width)
        for index, layer in enumerate(self.layers):
            moved = torch.from_numpy(self._moved(layer, ta, tb) - self._grid[:2]).float()
            mask = ids == index
            out[:, mask] = moved[:, mask]
        return out

    def visible(self, ta: float, tb: float) -> Tensor:
        """1 where the content at each pixel at ta is still visible (same top layer) at tb."""
        _, ids_a = self.render(ta)
        _, ids_b = self.render(tb)
        f = self.flow(ta, tb)
        xs = torch.arange(self.width).view(1, -1) + f[0]
        ys = torch.arange(self.height).view(-1, 1) + f[1]
        inside = (xs > -0.5) & (xs < self.width - 0.5) & (ys > -0.5) & (ys < self.height - 0.5)
        xi = xs.round().long().clamp(0, self.width - 1)
        yi = ys.round().long().clamp(0, self.height - 1)
        return (inside & (ids_b[yi, xi] == ids_a)).float()


@dataclass
class MotionRanges:
    """How large the sampled motion is; the trainer grows ``max_shift`` as a curriculum."""

    max_shift: float = 24.0  # largest displacement (pixels) between frames 0 and 1
    max_objects: int = 4
    brightness: float = 0.1  # largest relative brightness change between frames 0 and 1
    blur: float = 0.8  # largest Gaussian blur sigma
    noise: float = 0.01  # largest input noise standard deviation
    locked_off: float = 0.25  # share of scenes whose camera does not move (static regions must stay sharp)
    background_ripple: float = 0.0  # largest smooth non-rigid background displacement, as a share of max_shift
    transpose: float = 0.0  # share of samples with x and y exchanged


class PhotoBank:
    """Photographs (backgrounds) and cut-outs with alpha (moving objects), held in memory."""

    def __init__(self, photos: list[np.ndarray], cutouts: list[np.ndarray]) -> None:
        if not photos:
            raise ValueError("no photographs")
        self.photos = [torch.from_numpy(np.array(p)).permute(2, 0, 1).float() / 255 for p in photos]
        self.cutouts = [torch.from_numpy(np.array(c)).permute(2, 0, 1).float() / 255 for c in cutouts]

    def background(self, rng: np.random.Generator, size: int) -> Tensor:
        photo = self.photos[rng.integers(len(self.photos))]
        _, h, w = photo.shape
        # Crop at a random scale so textures appear at many sizes.
        crop = int(min(h, w) * rng.uniform(0.35, 1.0))
        crop = max(crop, min(h, w, 64))
        y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        tex = photo[:, y : y + crop, x : x + crop]
        side = int(size * rng.uniform(1.6, 2.2))
        tex = F.interpolate(tex[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0]
        return _jitter(tex, rng)

    def cutout(self, rng: np.random.Generator, size: int) -> Tensor:
        """An RGBA object: a real cut-out stamp, or a soft-edged patch of another photograph."""
        if self.cutouts and rng.random() < 0.7:
            tex = self.cutouts[rng.integers(len(self.cutouts))]
        else:
            photo = self.photos[rng.integers(len(self.photos))]
            _, h, w = photo.shape
            side = int(min(h, w) * rng.uniform(0.1, 0.4))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            patch = photo[:, y : y + side, x : x + side]
            tex = torch.cat((patch, _soft_blob(rng, side)[None]))
        h, w = tex.shape[1:]
        scale = size * rng.uniform(0.15, 0.5) / max(h, w)
        out = F.interpolate(tex[None], size=(max(int(h * scale), 4), max(int(w * scale), 4)), mode="bilinear",
                            antialias=True, align_corners=False)[0]
        rgb = _jitter(out[:3], rng)
        return torch.cat((rgb, out[3:4]))


def _jitter(rgb: Tensor, rng: np.random.Generator) -> Tensor:
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, size=(3, 1, 1))).float()
    rgb = rgb * gain + float(rng.uniform(-0.08, 0.08))
    if rng.random() < 0.5:
        rgb = rgb.flip(2)
    return rgb.clamp(0, 1)


def _soft_blob(rng: np.random.Generator, side: int) -> Tensor:
    """A soft elliptical matte with a wobbly edge."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    angle = torch.atan2(ys, xs)
    radius = 0.75 + sum(float(rng.uniform(-0.12, 0.12)) * torch.cos(k * angle + float(rng.uniform(0, 6.3)))
                        for k in (2, 3, 5))
    ax, ay = rng.uniform(0.6, 1.0, size=2)
    r = torch.sqrt((xs / ax) ** 2 + (ys / ay) ** 2)
    return ((radius - r) / 0.06).clamp(0, 1)


def _random_vector(rng: np.random.Generator, magnitude: float) -> tuple[float, float]:
    # Biased towards small motion, as in real footage, with a tail up to `magnitude`.
    angle = rng.uniform(0, 2 * math.pi)
    r = magnitude * rng.random() ** 2
    return (r * math.cos(angle), r * math.sin(angle))


def random_scene(bank: PhotoBank, rng: np.random.Generator, size: int, ranges: MotionRanges) -> Scene:
    """A scene of ``size`` x ``size`` pixels with camera motion and several moving objects."""
    background = bank.background(rng, size)
    side = background.shape[1]
    shift = ranges.max_shift
    moving_camera = rng.random() >= ranges.locked_off
    camera = Placement(
        anchor=((side - 1) / 2, (side - 1) / 2),
        position=((size - 1) / 2, (size - 1) / 2),
        velocity=_random_vector(rng, shift * 0.8) if moving_camera else (0.0, 0.0),
        acceleration=_random_vector(rng, shift * 0.3) if moving_camera else (0.0, 0.0),
        angle=float(rng.uniform(-0.2, 0.2)),
        spin=float(rng.normal(0, 0.04)) if moving_camera else 0.0,
        log_scale=float(rng.uniform(-0.1, 0.1)),
        zoom=float(rng.normal(0, 0.04)) if moving_camera else 0.0,
    )
    layers = [Layer(torch.cat((background, torch.ones_like(background[:1]))), camera,
                    float(rng.uniform(-ranges.brightness, ranges.brightness)))]
    if ranges.background_ripple > 0 and moving_camera:  # drawn only then: validation scenes stay as they were
        layers[0].ripple = random_ripple(rng, size, ranges.background_ripple * shift)
    for _ in range(int(rng.integers(0, ranges.max_objects + 1))):
        tex = bank.cutout(rng, size)
        h, w = tex.shape[1:]
        layers.append(Layer(tex, Placement(
            anchor=((w - 1) / 2, (h - 1) / 2),
            position=(float(rng.uniform(0, size)), float(rng.uniform(0, size))),
            velocity=_random_vector(rng, shift),
            acceleration=_random_vector(rng, shift * 0.5),
            angle=float(rng.uniform(-math.pi, math.pi)),
            spin=float(rng.normal(0, 0.15)),
            spin_acceleration=float(rng.normal(0, 0.05)),
            zoom=float(rng.normal(0, 0.06)),
        ), float(rng.uniform(-ranges.brightness, ranges.brightness) * 0.5)))
    return Scene(layers, size, size)


def _blur(x: Tensor, sigma: float) -> Tensor:
    if sigma < 0.2:
        return x
    radius = math.ceil(2.5 * sigma)
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2 / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[0]
    y = F.conv2d(F.pad(x[None], (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1),
                 groups=c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1),
                 groups=c)
    return y[0]


def synthetic_sample(bank: PhotoBank, rng: np.random.Generator, size: int, ranges: MotionRanges,
                     t: float | None = None) -> dict[str, Tensor]:
    """One training sample: frames 0, 1 and t, t, the true flows F0->1, F1->0 and visibility masks."""
    scene = random_scene(bank, rng, size, ranges)
    if t is None:
        t = float(rng.uniform(0.05, 0.95))
    sigma = float(rng.uniform(0, ranges.blur))
    frames = [_blur(scene.render(x)[0], sigma) for x in (0.0, t, 1.0)]
    noise = float(rng.uniform(0, ranges.noise))
    i0, i1 = ((f + noise * torch.randn_like(f)).clamp(0, 1) for f in (frames[0], frames[2]))
    sample = {
        "i0": i0,
        "i1": i1,
        "it": frames[1],
        "t": torch.tensor(t),
        "f01": scene.flow(0.0, 1.0),
        "f10": scene.flow(1.0, 0.0),
        "v01": scene.visible(0.0, 1.0),
        "v10": scene.visible(1.0, 0.0),
        "has_flow": torch.tensor(1.0),
    }
    if ranges.transpose > 0 and rng.random() < ranges.transpose:  # drawn only then, as for ripples
        return transposed(sample)
    return sample


def transposed(sample: dict[str, Tensor]) -> dict[str, Tensor]:
    """The sample with x and y exchanged: its labels stay exact (flows swap their components).

    The photographs have more horizontal edges than vertical ones (mean |dI/dy| 0.029 against |dI/dx|
    0.022 on training crops), so vertical motion is easier to see: a flow U-Net learns it first and
    horizontal motion hardly at all. Transposing half the samples gives both directions the same signal.
    """
    out = {k: v.transpose(-1, -2) if v.dim() >= 2 else v for k, v in sample.items()}
    for key in ("f01", "f10"):
        out[key] = out[key].flip(0)
    return out
