"""The Super SloMo network (Jiang et al., CVPR 2018): pure torch, nothing of VapourSynth.

Two U-Nets: one estimates the bidirectional flows between I0 and I1, the other refines the
time-dependent flow approximation and predicts a visibility map, so that any timestep t in (0, 1)
is synthesised by backward warping both frames and fusing them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WarpMode = Literal["exact", "legacy"]
Resample = Literal["bilinear", "bicubic"]
FlowSource = Literal["network", "dis"]

UNET_SCALES = (1.0, 0.5, 0.25)

# The original implementation subtracts this per-channel mean from RGB in [0, 1].
ORIGINAL_MEAN = (0.429, 0.431, 0.397)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Super SloMo model; saved with its weights.

    width: base channel count of both U-Nets (the paper uses 32: 39.6 M parameters).
    output_activation: apply LeakyReLU(0.1) to the U-Net output layer (as the original code does).
    input_mean: per-channel mean subtracted from RGB in [0, 1] before everything else.
    warp: "exact" samples at pixel centres with border padding; "legacy" reproduces the original
        code (x' = 2(x/W - 0.5), align_corners=True, zero padding).
    resample: how the output frame samples the input frames along the refined flows. Bilinear
        blurs wherever the flow has a fractional part, even on nearly still content; bicubic keeps
        detail (the interpolation U-Net's own inputs are always warped bilinearly).
    flow: where the bidirectional flows come from: "network" is the paper's flow U-Net; "dis" is
        OpenCV's classical DIS estimator (``flows.py``; preset chosen at run time), and the model has
        no flow U-Net.
    unet_scale: the resolution, relative to the frame, at which the interpolation U-Net runs (1, 1/2 or
        1/4). Its outputs (flow corrections and visibility) are smooth, so they are upsampled and the
        output frame is still sampled from the full-resolution inputs; 1/2 costs about a quarter.
    """

    width: int = 32
    output_activation: bool = False
    input_mean: tuple[float, float, float] = ORIGINAL_MEAN
    warp: WarpMode = "exact"
    resample: Resample = "bilinear"
    flow: FlowSource = "network"
    unet_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"width must be a positive integer, got {self.width!r}")
        if self.warp not in ("exact", "legacy"):
            raise ValueError(f"warp must be 'exact' or 'legacy', got {self.warp!r}")
        if self.resample not in ("bilinear", "bicubic"):
            raise ValueError(f"resample must be 'bilinear' or 'bicubic', got {self.resample!r}")
        if self.flow not in ("network", "dis"):
            raise ValueError(f"flow must be 'network' or 'dis', got {self.flow!r}")
        if self.unet_scale not in UNET_SCALES:
            raise ValueError(f"unet_scale must be one of {UNET_SCALES}, got {self.unet_scale!r}")
        object.__setattr__(self, "unet_scale", float(self.unet_scale))
        if len(self.input_mean) != 3:
            raise ValueError(f"input_mean needs 3 values, got {self.input_mean!r}")
        object.__setattr__(self, "input_mean", tuple(float(v) for v in self.input_mean))

    @classmethod
    def original(cls) -> ModelConfig:
        """The configuration of the public avinashpaliwal/Super-SloMo checkpoint."""
        return cls(width=32, output_activation=True, input_mean=ORIGINAL_MEAN, warp="legacy")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("config is not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        if "input_mean" in data:
            data["input_mean"] = tuple(data["input_mean"])
        return cls(**data)


# Spatial size of every input must be a multiple of this (five 2x poolings).
SIZE_MULTIPLE = 32


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.1)


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        pad = (kernel - 1) // 2
        self.conv1 = nn.Conv2d(cin, cout, kernel, padding=pad)
        self.conv2 = nn.Conv2d(cout, cout, kernel, padding=pad)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2)
        return _leaky(self.conv2(_leaky(self.conv1(x))))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * cout, cout, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = _leaky(self.conv1(x))
        return _leaky(self.conv2(torch.cat((x, skip), dim=1)))


class UNet(nn.Module):
    """The Super SloMo U-Net; layer names match the original code so its weights load strictly."""

    def __init__(self, cin: int, cout: int, width: int, output_activation: bool) -> None:
        super().__init__()
        w = width
        self.output_activation = output_activation
        self.conv1 = nn.Conv2d(cin, w, 7, padding=3)
        self.conv2 = nn.Conv2d(w, w, 7, padding=3)
        self.down1 = _Down(w, 2 * w, 5)
        self.down2 = _Down(2 * w, 4 * w, 3)
        self.down3 = _Down(4 * w, 8 * w, 3)
        self.down4 = _Down(8 * w, 16 * w, 3)
        self.down5 = _Down(16 * w, 16 * w, 3)
        self.up1 = _Up(16 * w, 16 * w)
        self.up2 = _Up(16 * w, 8 * w)
        self.up3 = _Up(8 * w, 4 * w)
        self.up4 = _Up(4 * w, 2 * w)
        self.up5 = _Up(2 * w, w)
        self.conv3 = nn.Conv2d(w, cout, 3, padding=1)

    def stem(self, leading: Tensor) -> Tensor:
        """conv1's response (with bias) to the leading input channels alone.

        conv1 is linear, so inputs shared by many calls can be convolved once and passed to
        :meth:`forward` as ``stem`` together with only the remaining channels.
        """
        weight = self.conv1.weight[:, : leading.shape[1]]
        return F.conv2d(leading, weight, self.conv1.bias, padding=3)

    def forward(self, x: Tensor, stem: Tensor | None = None) -> Tensor:
        rest = self.conv1.weight[:, -x.shape[1] :]
        h = self.conv1(x) if stem is None else stem + F.conv2d(x, rest, None, padding=3)
        s1 = _leaky(self.conv2(_leaky(h)))
        s2 = self.down1(s1)
        s3 = self.down2(s2)
        s4 = self.down3(s3)
        s5 = self.down4(s4)
        x = self.down5(s5)
        x = self.up1(x, s5)
        x = self.up2(x, s4)
        x = self.up3(x, s3)
        x = self.up4(x, s2)
        x = self.up5(x, s1)
        x = self.conv3(x)
        return _leaky(x) if self.output_activation else x


def backward_warp(image: Tensor, flow: Tensor, mode: WarpMode = "exact", resample: Resample = "bilinear") -> Tensor:
    """Sample `image` at (x + u, y + v) for every pixel (x, y); flow is (N, 2, H, W) in pixels."""
    _, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    if mode == "exact":
        # Pixel centres: pixel i covers [i, i+1) so its centre maps to (2i + 1) / W - 1.
        grid = torch.stack(((2 * x + 1) / w - 1, (2 * y + 1) / h - 1), dim=3)
        return F.grid_sample(image, grid, mode=resample, padding_mode="border", align_corners=False)
    grid = torch.stack((2 * (x / w - 0.5), 2 * (y / h - 0.5)), dim=3)
    return F.grid_sample(image, grid, mode=resample, padding_mode="zeros", align_corners=True)


def approximate_flows(f01: Tensor, f10: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's time-dependent flows (Ft->0, Ft->1); t has shape (N, 1, 1, 1)."""
    ft0 = -(1 - t) * t * f01 + t * t * f10
    ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
    return ft0, ft1


@dataclass(frozen=True)
class PairFeatures:
    """A pair's frames and flows at the interpolation U-Net's scale (flows in its pixels), and optionally
    the U-Net's first-layer response to them, which every timestep shares."""

    i0: Tensor
    i1: Tensor
    f01: Tensor
    f10: Tensor
    stem: Tensor | None = None


@dataclass
class Synthesis:
    """Everything computed for a batch of timesteps; training losses read the intermediates."""

    frame: Tensor  # (N, 3, H, W) RGB in [0, 1] range (not clamped)
    flow_t0: Tensor  # refined Ft->0
    flow_t1: Tensor  # refined Ft->1
    visibility_t0: Tensor  # V_t<-0 in (0, 1)


class SuperSloMo(nn.Module):
    """Flow U-Net (6 -> 4 channels, or DIS flows) and arbitrary-time interpolation U-Net (20 -> 5 channels)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.flow_net = UNet(6, 4, c.width, c.output_activation) if c.flow == "network" else None
        self.interp_net = UNet(20, 5, c.width, c.output_activation)
        self.register_buffer("mean", torch.tensor(c.input_mean).view(1, 3, 1, 1), persistent=False)

    @property
    def size_multiple(self) -> int:
        """Frame sizes the model takes are multiples of this (the U-Nets' five poolings at their scale)."""
        return round(SIZE_MULTIPLE / self.config.unet_scale)

    def _to_unet(self, x: Tensor, is_flow: bool = False) -> Tensor:
        """A full-resolution image or flow at the interpolation U-Net's resolution (flows in its pixels)."""
        s = self.config.unet_scale
        if s == 1.0:
            return x
        small = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False, antialias=True)
        return small * s if is_flow else small

    def _from_unet(self, out: Tensor, size: tuple[int, int]) -> Tensor:
        """The U-Net's output (two flow corrections, a visibility logit) back at full resolution."""
        s = self.config.unet_scale
        if s == 1.0:
            return out
        big = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return torch.cat((big[:, :4] / s, big[:, 4:]), dim=1)

    def _mean(self, dtype: torch.dtype) -> Tensor:
        return self.get_buffer("mean").to(dtype)

    def normalize(self, rgb: Tensor) -> Tensor:
        """RGB in [0, 1] to the network's input space."""
        return rgb - self._mean(rgb.dtype)

    def denormalize(self, x: Tensor) -> Tensor:
        """The network's input space back to RGB in [0, 1]."""
        return x + self._mean(x.dtype)

    def compute_flows(self, i0: Tensor, i1: Tensor) -> tuple[Tensor, Tensor]:
        """The flow U-Net's bidirectional flows (F0->1, F1->0) in pixels, from normalised frames (N, 3, H, W).

        Models with ``flow="dis"`` have no flow U-Net: ``vs_superslomo.flows`` gives flows for both kinds.
        """
        if self.flow_net is None:
            raise ValueError("this model takes its flows from DIS; use vs_superslomo.flows.compute_flows")
        out = self.flow_net(torch.cat((i0, i1), dim=1))
        return out[:, :2], out[:, 2:4]

    def pair_features(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor) -> PairFeatures:
        """What every timestep of a pair shares: its inputs at the U-Net's scale and their first-layer response."""
        small = self.pair_inputs(i0, i1, f01, f10)
        stem = self.interp_net.stem(torch.cat((small.i0, small.i1, small.f01, small.f10), dim=1))
        return replace(small, stem=stem)

    def synthesize(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor, t: Tensor,
                   pair: PairFeatures | None = None) -> Synthesis:
        """Frames at timesteps t (shape (N,)) from normalised frames and their flows.

        Inputs with batch size 1 are broadcast to the N timesteps. ``pair`` (from :meth:`pair_features`)
        saves recomputing what the timesteps of a pair share.
        """
        n = t.shape[0]
        tt = t.to(i0.dtype).view(n, 1, 1, 1)
        if pair is None:
            corrections = self._unet_corrections(self.pair_inputs(i0, i1, f01, f10), tt)
        else:
            corrections = self._unet_corrections(pair, tt)
        out = self._from_unet(corrections, (i0.shape[-2], i0.shape[-1]))
        i0, i1, f01, f10 = (x.expand(n, -1, -1, -1) for x in (i0, i1, f01, f10))
        ft0, ft1 = approximate_flows(f01, f10, tt)
        ft0 = ft0 + out[:, 0:2]
        ft1 = ft1 + out[:, 2:4]
        v0 = torch.sigmoid(out[:, 4:5])
        v1 = 1 - v0
        mode = self.config.warp
        g0 = backward_warp(i0, ft0, mode, self.config.resample)
        g1 = backward_warp(i1, ft1, mode, self.config.resample)
        w0 = (1 - tt) * v0
        w1 = tt * v1
        fused = (w0 * g0 + w1 * g1) / (w0 + w1 + 1e-8)
        return Synthesis(fused + self._mean(fused.dtype), ft0, ft1, v0)

    def pair_inputs(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor) -> PairFeatures:
        """A pair's inputs at the U-Net's scale, without the first layer's response."""
        return PairFeatures(self._to_unet(i0), self._to_unet(i1), self._to_unet(f01, True), self._to_unet(f10, True))

    def _unet_corrections(self, pair: PairFeatures, tt: Tensor) -> Tensor:
        """The interpolation U-Net's output at its own resolution for timesteps tt (N, 1, 1, 1)."""
        n = tt.shape[0]
        i0, i1, f01, f10 = (x.expand(n, -1, -1, -1) for x in (pair.i0, pair.i1, pair.f01, pair.f10))
        ft0, ft1 = approximate_flows(f01, f10, tt)
        mode = self.config.warp
        g0 = backward_warp(i0, ft0, mode)
        g1 = backward_warp(i1, ft1, mode)
        if pair.stem is None:
            return self.interp_net(torch.cat((i0, i1, f01, f10, ft1, ft0, g1, g0), dim=1))
        return self.interp_net(torch.cat((ft1, ft0, g1, g0), dim=1), stem=pair.stem.expand(n, -1, -1, -1))

    def forward(self, rgb0: Tensor, rgb1: Tensor, t: Tensor) -> Tensor:
        """Interpolated RGB frames at timesteps t (N,) between RGB frames in [0, 1] (1 or N, 3, H, W).

        Flow-network models only; ``vs_superslomo.flows.interpolate_rgb`` runs both kinds.
        """
        i0, i1 = self.normalize(rgb0), self.normalize(rgb1)
        f01, f10 = self.compute_flows(i0, i1)
        return self.synthesize(i0, i1, f01, f10, t).frame
