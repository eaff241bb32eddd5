"""The Super SloMo network (Jiang et al., CVPR 2018): pure torch, nothing of VapourSynth.

Two U-Nets: one estimates the bidirectional flows between I0 and I1, the other refines the
time-dependent flow approximation and predicts a visibility map, so that any timestep t in (0, 1)
is synthesised by backward warping both frames and fusing them. Also here, as pure motion arithmetic: the
forward-backward consistency of two flows (the classical occlusion weights) and quadratic motion through
the frames around a pair (``quadratic_acceleration``).
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
    consistency: the U-Net also sees how far each frame's flows are consistent (forward-backward
        round trip, ``consistency_trust``), and its visibility output is a correction of the classical
        occlusion weights those imply: a U-Net that outputs zeros fuses like the classical baseline.
    flow_norm: the flow U-Net normalises every hidden layer (group normalisation over groups of
        ``NORM_GROUP`` channels, without learned parameters, so the weights keep the paper's names) and
        starts from Kaiming initialisation. Not in the paper; without it our CPU runs learned motion
        slowly (model card, "The two-network model").
    flow_net_scale: the resolution, relative to the frame, at which the flow U-Net runs (1, 1/2 or 1/4); its
        flows are upsampled to the frame. Not in the paper: at 1/4 a 32 px motion is 8 px to the network,
        which our CPU runs learn far sooner (model card, "The two-network model").
    flow_correlation: when above 0, the flow U-Net also sees, both ways, how well each pixel's 3x3 patch matches
        the other frame's patches displaced by up to this many pixels each way (``flow_correlation_scale``; normalised
        cross-correlation, a softmax over the displacements; FlowNetC's idea, not in Super SloMo): motion to read
        off rather than to discover. 4 at ``flow_net_scale`` 1/4 reaches 32 px.
    flow_correlation_scale: the resolution of that correlation relative to the flow U-Net's input (1/2 or 1). At
        1 the matches are twice as precise and reach half as far for the same radius, at four times the cost.
    flow_peak: the flow U-Net also sees, both ways, the displacement of each pixel's best match in that
        correlation (averaged over 3x3 neighbours, refined to a fraction of a pixel by a parabola through the peak),
        in its own pixels: a block matcher's flow for it to correct, where the softmax alone was learned slowly
        (model card, "The two-network model").
    flow_residual: the flow U-Net's output is a correction added to those best matches rather than the flow
        itself (a fresh model's output layer starts at zero, so it starts as the block matcher; tried, not yet
        better: model card).
    flow_contrast: the flow U-Net also sees how much contrast each frame's 3x3 patches have at the correlation's
        resolution (log10 of their zero-mean length): on flat and smoothly shaded areas the best match is noise
        (tried, not yet better: model card).
    """

    width: int = 32
    output_activation: bool = False
    input_mean: tuple[float, float, float] = ORIGINAL_MEAN
    warp: WarpMode = "exact"
    resample: Resample = "bilinear"
    flow: FlowSource = "network"
    unet_scale: float = 1.0
    consistency: bool = False
    flow_norm: bool = False
    flow_net_scale: float = 1.0
    flow_correlation: int = 0
    flow_correlation_scale: float = 0.5
    flow_peak: bool = False
    flow_residual: bool = False
    flow_contrast: bool = False

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
        if self.flow_net_scale not in UNET_SCALES:
            raise ValueError(f"flow_net_scale must be one of {UNET_SCALES}, got {self.flow_net_scale!r}")
        object.__setattr__(self, "flow_net_scale", float(self.flow_net_scale))
        if not isinstance(self.flow_correlation, int) or self.flow_correlation < 0:
            raise ValueError(f"flow_correlation must be a whole number of pixels, got {self.flow_correlation!r}")
        if self.flow_correlation_scale not in CORRELATION_SCALES:
            raise ValueError(f"flow_correlation_scale must be one of {CORRELATION_SCALES}, "
                             f"got {self.flow_correlation_scale!r}")
        object.__setattr__(self, "flow_correlation_scale", float(self.flow_correlation_scale))
        if self.flow_peak and not self.flow_correlation:
            raise ValueError("flow_peak reads the best match off the correlation: it needs flow_correlation")
        if self.flow_residual and not self.flow_peak:
            raise ValueError("flow_residual corrects the best matches: it needs flow_peak")
        if self.flow_contrast and not self.flow_correlation:
            raise ValueError("flow_contrast goes with the correlation's inputs: it needs flow_correlation")
        if self.flow_correlation_scale != 0.5 and not self.flow_correlation:
            raise ValueError("flow_correlation_scale places the correlation: it needs flow_correlation")
        if self.flow != "network" and (self.flow_norm or self.flow_net_scale != 1.0 or self.flow_correlation):
            raise ValueError("flow_norm, flow_net_scale and flow_correlation shape the flow U-Net, and a model with "
                             "DIS flows has none")
        if len(self.input_mean) != 3:
            raise ValueError(f"input_mean needs 3 values, got {self.input_mean!r}")
        object.__setattr__(self, "input_mean", tuple(float(v) for v in self.input_mean))

    @property
    def flow_net_inputs(self) -> int:
        """Input channels of the flow U-Net: both frames, and with a correlation both ways' softmaxes, both frames'
        contrast and both ways' best matches, as configured."""
        if not self.flow_correlation:
            return 6
        return 6 + 2 * (2 * self.flow_correlation + 1) ** 2 + (4 if self.flow_peak else 0) + 2 * self.flow_contrast

    @property
    def size_multiple(self) -> int:
        """Frame sizes a model of this configuration takes are multiples of this (the U-Nets' five poolings
        at their scales)."""
        return round(SIZE_MULTIPLE / min(self.unet_scale, self.flow_net_scale))

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


# Resolutions, relative to the flow U-Net's input, at which ``ModelConfig.flow_correlation`` matches patches.
CORRELATION_SCALES = (0.5, 1.0)
# Spatial size of every input must be a multiple of this (five 2x poolings).
SIZE_MULTIPLE = 32


# Channels per group of a normalised U-Net (``ModelConfig.flow_norm``).
NORM_GROUP = 4
LEAKY_SLOPE = 0.1


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


def _activate(x: Tensor, norm: bool) -> Tensor:
    """A hidden layer's activation, group-normalised first in a normalised U-Net."""
    return _leaky(F.group_norm(x, max(1, x.shape[1] // NORM_GROUP)) if norm else x)


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, norm: bool = False) -> None:
        super().__init__()
        pad = (kernel - 1) // 2
        self.norm = norm
        self.conv1 = nn.Conv2d(cin, cout, kernel, padding=pad)
        self.conv2 = nn.Conv2d(cout, cout, kernel, padding=pad)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2)
        return _activate(self.conv2(_activate(self.conv1(x), self.norm)), self.norm)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, norm: bool = False) -> None:
        super().__init__()
        self.norm = norm
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * cout, cout, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = _activate(self.conv1(x), self.norm)
        return _activate(self.conv2(torch.cat((x, skip), dim=1)), self.norm)


class UNet(nn.Module):
    """The Super SloMo U-Net; layer names match the original code so its weights load strictly.

    ``norm``: every hidden layer group-normalised, from Kaiming initialisation (``ModelConfig.flow_norm``).
    """

    def __init__(self, cin: int, cout: int, width: int, output_activation: bool, norm: bool = False) -> None:
        super().__init__()
        w = width
        self.output_activation = output_activation
        self.norm = norm
        self.conv1 = nn.Conv2d(cin, w, 7, padding=3)
        self.conv2 = nn.Conv2d(w, w, 7, padding=3)
        self.down1 = _Down(w, 2 * w, 5, norm)
        self.down2 = _Down(2 * w, 4 * w, 3, norm)
        self.down3 = _Down(4 * w, 8 * w, 3, norm)
        self.down4 = _Down(8 * w, 16 * w, 3, norm)
        self.down5 = _Down(16 * w, 16 * w, 3, norm)
        self.up1 = _Up(16 * w, 16 * w, norm)
        self.up2 = _Up(16 * w, 8 * w, norm)
        self.up3 = _Up(8 * w, 4 * w, norm)
        self.up4 = _Up(4 * w, 2 * w, norm)
        self.up5 = _Up(2 * w, w, norm)
        self.conv3 = nn.Conv2d(w, cout, 3, padding=1)
        if norm:
            self._kaiming_start()

    def _kaiming_start(self) -> None:
        """Kaiming initialisation for the hidden layers and a small output layer: flows start near zero."""
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(conv.get_parameter("bias"))
        nn.init.normal_(self.conv3.weight, std=1e-2)

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
        s1 = _activate(self.conv2(_activate(h, self.norm)), self.norm)
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


def backward_warp(image: Tensor, flow: Tensor, mode: WarpMode = "exact", resample: Resample = "bilinear",
                  top: int = 0) -> Tensor:
    """Sample `image` at (x + u, y + v) for every pixel (x, y); flow is (N, 2, h, W) in pixels and covers the
    image's rows ``top`` to ``top + h`` (all of them by default)."""
    _, _, h, w = flow.shape
    height = image.shape[-2]
    ys = torch.arange(top, top + h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    if mode == "exact":
        # Pixel centres: pixel i covers [i, i+1) so its centre maps to (2i + 1) / W - 1.
        grid = torch.stack(((2 * x + 1) / w - 1, (2 * y + 1) / height - 1), dim=3)
        return F.grid_sample(image, grid, mode=resample, padding_mode="border", align_corners=False)
    grid = torch.stack((2 * (x / w - 0.5), 2 * (y / height - 0.5)), dim=3)
    return F.grid_sample(image, grid, mode=resample, padding_mode="zeros", align_corners=True)


def downscaled(image: Tensor, scale: float) -> Tensor:
    """An image (or a stack of them) at ``scale`` of its size, antialiased."""
    return F.interpolate(image, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)


def flow_upscaled(flow: Tensor, size: tuple[int, int], scale: float) -> Tensor:
    """Flows estimated on frames downscaled by ``scale``, at ``size`` and in that size's pixels."""
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False) / scale


def _patch_features(image: Tensor) -> Tensor:
    """Each pixel's 3x3 patch over all channels, zero-mean and of unit length (N, 9C, H, W)."""
    return _patches_and_lengths(image)[0]


def _patches_and_lengths(image: Tensor) -> tuple[Tensor, Tensor]:
    """``_patch_features`` and the length each patch had before it was normalised (N, 1, H, W)."""
    n, c, h, w = image.shape
    patches = F.unfold(image, 3, padding=1).view(n, 9 * c, h, w)
    patches = patches - patches.mean(dim=1, keepdim=True)
    lengths = torch.linalg.vector_norm(patches, dim=1, keepdim=True)
    return patches / (lengths + 1e-3), lengths


def correlation(a: Tensor, b: Tensor, radius: int) -> Tensor:
    """Normalised cross-correlation of a's 3x3 patches with b's displaced by (dy, dx), |dy|, |dx| <= radius:
    (N, (2 radius + 1)^2, H, W), displacements in row-major order; b's border is replicated."""
    return _correlate(_patch_features(a), _patch_features(b), radius)


def _correlate(fa: Tensor, fb: Tensor, radius: int) -> Tensor:
    """``correlation`` of two images' patch features."""
    h, w = fa.shape[-2:]
    r = radius
    fb = F.pad(fb, (r, r, r, r), mode="replicate")
    return torch.cat([(fa * fb[..., r + dy : r + dy + h, r + dx : r + dx + w]).sum(dim=1, keepdim=True)
                      for dy in range(-r, r + 1) for dx in range(-r, r + 1)], dim=1)


# Temperature of the softmax over a correlation's displacements (its values lie in [-1, 1]).
MATCH_TEMPERATURE = 0.1


def _matching(a: Tensor, b: Tensor, config: ModelConfig) -> Tensor:
    """The flow U-Net's matching inputs (``ModelConfig.flow_correlation`` and what follows it): both ways'
    correlations at ``flow_correlation_scale`` of the frames' resolution, as a softmax over displacements, then
    both frames' contrast (``flow_contrast``), then both ways' best displacements (x, y) in the frames' pixels
    (``flow_peak``, last); all at the frames' resolution."""
    radius, scale, size = config.flow_correlation, config.flow_correlation_scale, (a.shape[-2], a.shape[-1])
    a, b = (x if scale == 1.0 else downscaled(x, scale) for x in (a, b))
    (fa, length_a), (fb, length_b) = _patches_and_lengths(a), _patches_and_lengths(b)
    ways = (_correlate(fa, fb, radius), _correlate(fb, fa, radius))
    parts = [torch.softmax(costs / MATCH_TEMPERATURE, dim=1) for costs in ways]
    if config.flow_contrast:
        # log10 of the patch lengths: about -3 on flat or smoothly shaded areas, whose matches are noise, up to
        # about 0 on edges
        parts += [torch.log10(length_a + 1e-3), torch.log10(length_b + 1e-3)]
    matches = F.interpolate(torch.cat(parts, dim=1), size=size, mode="bilinear", align_corners=False)
    if not config.flow_peak:
        return matches
    peaks = torch.cat([_peak_displacement(costs, radius) for costs in ways], dim=1)
    return torch.cat((matches, flow_upscaled(peaks, size, scale)), dim=1)


def _peak_displacement(costs: Tensor, radius: int) -> Tensor:
    """Each pixel's best displacement (x, y) in a ``correlation`` of that radius: its costs averaged over 3x3
    neighbours (a single patch often matches several places), the peak moved by a parabola through it and its
    neighbours in each direction, by at most half a pixel."""
    side = 2 * radius + 1
    costs = F.avg_pool2d(costs, 3, stride=1, padding=1, count_include_pad=False)
    best = costs.argmax(dim=1, keepdim=True)
    row, col = torch.div(best, side, rounding_mode="floor"), best % side

    def cost_at(r: Tensor, c: Tensor) -> Tensor:
        return costs.gather(1, r.clamp(0, side - 1) * side + c.clamp(0, side - 1))

    centre = cost_at(row, col)
    shifts = []
    for step_r, step_c, index in ((0, 1, col), (1, 0, row)):
        before, after = cost_at(row - step_r, col - step_c), cost_at(row + step_r, col + step_c)
        curvature = before - 2 * centre + after
        fraction = 0.5 * (before - after) / curvature.clamp(max=-1e-6)
        inside = (index > 0) & (index < side - 1) & (curvature < -1e-6)
        shifts.append(index - radius + torch.where(inside, fraction.clamp(-0.5, 0.5), 0.0))
    return torch.cat(shifts, dim=1)


# Forward-backward inconsistency (pixels) at which a warp is trusted half as much.
CONSISTENCY_PX = 1.0
# Disagreement (pixels, plus their mean size) at which the accelerations seen from the two frames count half.
ACCELERATION_PX = 1.0


def flow_length(flow: Tensor) -> Tensor:
    """Per-pixel length of flows (N, 2, H, W), (N, 1, H, W) (torch's vector_norm over dim 1 is ~100x slower)."""
    return torch.hypot(flow[:, 0:1], flow[:, 1:2])


def inconsistency(forward: Tensor, backward: Tensor) -> Tensor:
    """|F(x) + B(x + F(x))| in pixels, (N, 1, H, W): how far a pixel lands from home after both flows."""
    return flow_length(forward + backward_warp(backward, forward))


def consistency_trust(forward: Tensor, backward: Tensor, pixels: float = CONSISTENCY_PX) -> Tensor:
    """(N, 1, H, W) in (0, 1] on the forward flow's grid: 1 where the round trip lands home, 1/2 at
    ``pixels`` off. Low trust in F0->1 at x means x of frame 0 is not seen in frame 1 (or the flow is wrong)."""
    return 1 / (1 + (inconsistency(forward, backward) / pixels) ** 2)


def visibility_logit(trust0: Tensor, trust1: Tensor) -> Tensor:
    """The logit of V_t<-0 that weights the two warps by their trust (each on the output grid)."""
    return torch.log(trust0 + 1e-3) - torch.log(trust1 + 1e-3)


@dataclass(frozen=True)
class Acceleration:
    """Quadratic motion of a pair's pixels (Xu et al., "Quadratic Video Interpolation", NeurIPS 2019): the
    second-order term of each frame's trajectory, on that frame's grid or a coarser one (it is smooth; the
    frame's size must be a whole multiple of it), in that grid's pixels per pair interval squared."""

    of0: Tensor  # (N, 2, h, w): a pixel of frame 0 is at F0->t = a t^2 + (F0->1 - a) t
    of1: Tensor  # (N, 2, h, w): a pixel of frame 1 is at F1->t = a s^2 + (a - F1->0) s, s = t - 1

    def bend(self, t: Tensor, size: tuple[int, int]) -> Tensor:
        """What the acceleration adds to both time-t flows Ft->0 and Ft->1, (N, 2, *size) in that grid's pixels:
        t (1 - t) ((1 - t) a0 + t a1) (the quadratic paths minus the straight ones, weighted as the paper's)."""
        bend = t * (1 - t) * ((1 - t) * self.of0 + t * self.of1)
        if tuple(bend.shape[-2:]) == size:
            return bend
        ratio = size[1] / bend.shape[-1]
        return F.interpolate(bend, size=size, mode="bilinear", align_corners=False) * ratio


def quadratic_acceleration(f01: Tensor, f0_before: Tensor, gap_before: float, trust_before: Tensor,
                           f10: Tensor, f1_after: Tensor, gap_after: float, trust_after: Tensor,
                           scale: float = 1.0) -> Acceleration:
    """The acceleration of each frame's pixels from the flows to the frames around the pair.

    ``f0_before`` is F0->-1 (frame 0 to the frame before it, ``gap_before`` pair intervals earlier),
    ``f1_after`` F1->2 (``gap_after`` intervals after frame 1). The motion stays straight where a neighbour's
    flows do not return home (``consistency_trust`` of that pair, on frames 0 and 1's grids: an occlusion, a
    cut, motion beyond the estimator) and where the two frames' accelerations disagree (a shaking camera
    jerks; a smooth acceleration looks the same from both frames), and it bends no further than the pair's own
    motion allows (``_within_own_motion``). Flows measured on a grid ``scale`` times
    the frame's size give accelerations in that grid's pixels.
    """
    r, q = gap_before, gap_after
    # The pair's own motion: the shorter of its two flows' estimates (DIS's flow in a flat region is arbitrary).
    own = torch.minimum(flow_length(f01), flow_length(f10))
    of0 = _within_own_motion((f0_before + r * f01) / (r * (1 + r)) * trust_before, own)
    of1 = _within_own_motion((f1_after + q * f10) / (q * (1 + q)) * trust_after, own)
    agree0 = _agreement(of0, backward_warp(of1, f01), ACCELERATION_PX * scale)
    agree1 = _agreement(of1, backward_warp(of0, f10), ACCELERATION_PX * scale)
    return Acceleration(of0 * agree0, of1 * agree1)


def _within_own_motion(acceleration: Tensor, own: Tensor) -> Tensor:
    """The acceleration, shortened where it is longer than the pair's own flow at that pixel.

    A pixel whose path x(t) = a t^2 + (F - a) t does not turn back within the pair has |a| <= |F| (its speed
    along F is F - a at t = 0 and F + a at t = 1), so it strays at most |F| / 4 from the straight line. A
    pair that barely moves between frames that move a lot (a camera stopping and starting again) would
    otherwise bow out and back along the neighbours' motion.
    """
    length = flow_length(acceleration)
    return acceleration * torch.clamp(own / length.clamp_min(1e-6), max=1.0)


def _agreement(mine: Tensor, theirs: Tensor, pixels: float) -> Tensor:
    """(N, 1, H, W): 1 where two accelerations agree, 1/2 where they differ by ``pixels`` plus their mean size."""
    tolerance = pixels + 0.5 * (flow_length(mine) + flow_length(theirs))
    return 1 / (1 + (flow_length(mine - theirs) / tolerance) ** 2)


def approximate_flows(f01: Tensor, f10: Tensor, t: Tensor, bend: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The time-dependent flows (Ft->0, Ft->1); t has shape (N, 1, 1, 1).

    The paper's approximation weights the estimate seen from frame 0 by 1 - t and the one from frame 1 by t;
    with quadratic motion each frame's pixels follow a parabola instead of a line, which moves both flows
    by the same ``bend`` (``Acceleration.bend`` at the flows' size; zero bend is the paper's formula exactly).
    """
    # Coefficients first (t is tiny), then two passes over each full-size flow: this runs for every frame.
    ft0 = torch.addcmul(f10 * (t * t), f01, -(1 - t) * t)
    ft1 = torch.addcmul(f10 * (-t * (1 - t)), f01, (1 - t) * (1 - t))
    if bend is None:
        return ft0, ft1
    return ft0.add_(bend), ft1.add_(bend)


@dataclass(frozen=True)
class PairFeatures:
    """A pair's frames and flows at the interpolation U-Net's scale (flows in its pixels), and optionally
    the U-Net's first-layer response to them, which every timestep shares."""

    i0: Tensor
    i1: Tensor
    f01: Tensor
    f10: Tensor
    stem: Tensor | None = None
    # With ``ModelConfig.consistency``: trust in warping frame 0 (on frame 1's grid, from F1->0) and frame 1
    # (on frame 0's grid, from F0->1).
    trust0: Tensor | None = None
    trust1: Tensor | None = None

    def leading(self) -> Tensor:
        """The U-Net inputs every timestep of the pair shares, in channel order."""
        shared = [self.i0, self.i1, self.f01, self.f10]
        if self.trust0 is not None and self.trust1 is not None:
            shared += [self.trust0, self.trust1]
        return torch.cat(shared, dim=1)


@dataclass
class Synthesis:
    """Everything computed for a batch of timesteps; training losses read the intermediates."""

    frame: Tensor  # (N, 3, H, W) RGB in [0, 1] range (not clamped)
    flow_t0: Tensor  # refined Ft->0
    flow_t1: Tensor  # refined Ft->1
    visibility_t0: Tensor  # V_t<-0 in (0, 1)


@dataclass(frozen=True)
class Fusion:
    """A batch of timesteps ready for the full-resolution part of synthesis: warping both frames along the
    refined time-t flows and fusing them by visibility. Every output pixel depends only on its own row's
    flows, so :meth:`rows` gives any band of rows exactly as the whole frame would have them: the engine
    renders large frames band by band to bound the memory this part needs."""

    i0: Tensor  # normalised frames (1 or N, 3, H, W), sampled anywhere
    i1: Tensor
    f01: Tensor  # (1 or N, 2, H, W)
    f10: Tensor
    tt: Tensor  # (N, 1, 1, 1)
    corrections: Tensor | None  # (N, 5, H, W): the U-Net's flow corrections and visibility logit, upsampled;
    # None without refinement: the approximated flows, and both frames weighted by time alone
    bend: Tensor | None  # (N, 2, H, W): quadratic motion's share of both time-t flows
    mean: Tensor
    warp: WarpMode
    resample: Resample

    def rows(self, top: int, bottom: int) -> Synthesis:
        """The output's rows ``top`` to ``bottom`` (and their flows and visibility)."""
        n = self.tt.shape[0]
        band = slice(top, bottom)
        f01, f10 = (x[..., band, :].expand(n, -1, -1, -1) for x in (self.f01, self.f10))
        bend = None if self.bend is None else self.bend[..., band, :]
        ft0, ft1 = approximate_flows(f01, f10, self.tt, bend)
        out = None if self.corrections is None else self.corrections[..., band, :]
        if out is not None:
            ft0 = ft0 + out[:, 0:2]
            ft1 = ft1 + out[:, 2:4]
        i0, i1 = (x.expand(n, -1, -1, -1) for x in (self.i0, self.i1))
        g0 = backward_warp(i0, ft0, self.warp, self.resample, top)
        g1 = backward_warp(i1, ft1, self.warp, self.resample, top)
        if out is None:
            fused = torch.lerp(g0, g1, self.tt)
            return Synthesis(fused + self.mean, ft0, ft1, torch.full_like(fused[:, :1], 0.5))
        v0 = torch.sigmoid(out[:, 4:5])
        v1 = 1 - v0
        w0 = (1 - self.tt) * v0
        w1 = self.tt * v1
        fused = (w0 * g0 + w1 * g1) / (w0 + w1 + 1e-8)
        return Synthesis(fused + self.mean, ft0, ft1, v0)


class SuperSloMo(nn.Module):
    """Flow U-Net (6 -> 4 channels, or DIS flows) and arbitrary-time interpolation U-Net (20 -> 5 channels)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.flow_net = UNet(c.flow_net_inputs, 4, c.width, c.output_activation, c.flow_norm) \
            if c.flow == "network" else None
        if self.flow_net is not None and c.flow_residual:
            for parameter in self.flow_net.conv3.parameters():
                nn.init.zeros_(parameter)
        self.interp_net = UNet(22 if c.consistency else 20, 5, c.width, c.output_activation)
        if c.consistency:
            # A fresh model starts as the classical fusion and learns corrections of it.
            for parameter in self.interp_net.conv3.parameters():
                nn.init.zeros_(parameter)
        self.register_buffer("mean", torch.tensor(c.input_mean).view(1, 3, 1, 1), persistent=False)

    @property
    def size_multiple(self) -> int:
        """Frame sizes the model takes are multiples of this (``ModelConfig.size_multiple``)."""
        return self.config.size_multiple

    @property
    def refines(self) -> bool:
        """Whether the interpolation U-Net can change a frame: one whose output layer is all zeros (a flow-only
        run's) fuses as ``fusion(refine=False)`` does, so the engine need not run it."""
        return any(bool(p.any()) for p in self.interp_net.conv3.parameters())

    def _to_unet(self, x: Tensor, is_flow: bool = False) -> Tensor:
        """A full-resolution image or flow at the interpolation U-Net's resolution (flows in its pixels)."""
        s = self.config.unet_scale
        if s == 1.0:
            return x
        small = downscaled(x, s)
        return small * s if is_flow else small

    def _from_unet(self, out: Tensor, size: tuple[int, int]) -> Tensor:
        """The U-Net's output (two flow corrections, a visibility logit) back at full resolution."""
        s = self.config.unet_scale
        if s == 1.0:
            return out
        big = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        big[:, :4] /= s  # in place: one frame-sized tensor fewer
        return big

    def _mean(self, dtype: torch.dtype) -> Tensor:
        return self.get_buffer("mean").to(dtype)

    def normalize(self, rgb: Tensor, out: Tensor | None = None) -> Tensor:
        """RGB in [0, 1] to the network's input space (into ``out`` when given, which may be ``rgb`` itself)."""
        if out is None:
            return rgb - self._mean(rgb.dtype)
        return torch.sub(rgb, self._mean(out.dtype), out=out)

    def denormalize(self, x: Tensor) -> Tensor:
        """The network's input space back to RGB in [0, 1]."""
        return x + self._mean(x.dtype)

    def compute_flows(self, i0: Tensor, i1: Tensor) -> tuple[Tensor, Tensor]:
        """The flow U-Net's bidirectional flows (F0->1, F1->0) in pixels, from normalised frames (N, 3, H, W).

        Models with ``flow="dis"`` have no flow U-Net: ``vs_superslomo.flows`` gives flows for both kinds.
        """
        if self.flow_net is None:
            raise ValueError("this model takes its flows from DIS; use vs_superslomo.flows.compute_flows")
        pair = torch.cat((i0, i1), dim=1)
        s, radius = self.config.flow_net_scale, self.config.flow_correlation
        x = pair if s == 1.0 else downscaled(pair, s)
        if radius:
            matches = _matching(x[:, :3], x[:, 3:], self.config)
            x = torch.cat((x, matches), dim=1)
        out = self.flow_net(x)
        if self.config.flow_residual:
            out = out + matches[:, -4:]
        if s != 1.0:
            out = flow_upscaled(out, (pair.shape[-2], pair.shape[-1]), s)
        return out[:, :2], out[:, 2:4]

    def pair_features(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor) -> PairFeatures:
        """What every timestep of a pair shares: its inputs at the U-Net's scale and their first-layer response."""
        small = self.pair_inputs(i0, i1, f01, f10)
        return replace(small, stem=self.interp_net.stem(small.leading()))

    def synthesize(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor, t: Tensor,
                   pair: PairFeatures | None = None, acceleration: Acceleration | None = None) -> Synthesis:
        """Frames at timesteps t (shape (N,)) from normalised frames and their flows.

        Inputs with batch size 1 are broadcast to the N timesteps. ``pair`` (from :meth:`pair_features`)
        saves recomputing what the timesteps of a pair share; ``acceleration`` (from
        :func:`quadratic_acceleration`) bends the trajectories.
        """
        return self.fusion(i0, i1, f01, f10, t, pair, acceleration).rows(0, i0.shape[-2])

    def fusion(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor, t: Tensor,
               pair: PairFeatures | None = None, acceleration: Acceleration | None = None,
               refine: bool = True) -> Fusion:
        """:meth:`synthesize` up to the full-resolution warping and fusion, which :meth:`Fusion.rows` does for
        any band of rows. Without ``refine`` the interpolation U-Net does not run: the paper's time-t flow
        approximation and time weights alone (what a U-Net that outputs zeros computes)."""
        n = t.shape[0]
        tt = t.to(i0.dtype).view(n, 1, 1, 1)
        size = (i0.shape[-2], i0.shape[-1])
        corrections = None
        if refine:
            small = self._unet_corrections(pair or self.pair_inputs(i0, i1, f01, f10), tt, acceleration)
            corrections = self._from_unet(small, size)
        bend = None if acceleration is None else acceleration.bend(tt, size)
        return Fusion(i0, i1, f01, f10, tt, corrections, bend, self._mean(i0.dtype), self.config.warp,
                      self.config.resample)

    def pair_inputs(self, i0: Tensor, i1: Tensor, f01: Tensor, f10: Tensor) -> PairFeatures:
        """A pair's inputs at the U-Net's scale, without the first layer's response."""
        s = self.config.unet_scale
        small = PairFeatures(self._to_unet(i0), self._to_unet(i1), self._to_unet(f01, True), self._to_unet(f10, True))
        if not self.config.consistency:
            return small
        pixels = CONSISTENCY_PX * s
        trust0 = consistency_trust(small.f10, small.f01, pixels)
        trust1 = consistency_trust(small.f01, small.f10, pixels)
        return replace(small, trust0=trust0, trust1=trust1)

    def _unet_corrections(self, pair: PairFeatures, tt: Tensor, acceleration: Acceleration | None = None) -> Tensor:
        """The interpolation U-Net's output at its own resolution for timesteps tt (N, 1, 1, 1)."""
        n = tt.shape[0]
        i0, i1, f01, f10 = (x.expand(n, -1, -1, -1) for x in (pair.i0, pair.i1, pair.f01, pair.f10))
        bend = None if acceleration is None else acceleration.bend(tt, (f01.shape[-2], f01.shape[-1]))
        ft0, ft1 = approximate_flows(f01, f10, tt, bend)
        mode = self.config.warp
        g0 = backward_warp(i0, ft0, mode)
        g1 = backward_warp(i1, ft1, mode)
        per_time = torch.cat((ft1, ft0, g1, g0), dim=1)
        if pair.stem is None:
            out = self.interp_net(torch.cat((pair.leading().expand(n, -1, -1, -1), per_time), dim=1))
        else:
            out = self.interp_net(per_time, stem=pair.stem.expand(n, -1, -1, -1))
        if pair.trust0 is None or pair.trust1 is None:
            return out
        # Each frame's trust, carried from its own grid to time t along the flow that samples it.
        prior = visibility_logit(backward_warp(pair.trust0.expand(n, -1, -1, -1), ft1, mode),
                                 backward_warp(pair.trust1.expand(n, -1, -1, -1), ft0, mode))
        return torch.cat((out[:, :4], out[:, 4:5] + prior), dim=1)

    def forward(self, rgb0: Tensor, rgb1: Tensor, t: Tensor) -> Tensor:
        """Interpolated RGB frames at timesteps t (N,) between RGB frames in [0, 1] (1 or N, 3, H, W).

        Flow-network models only; ``vs_superslomo.flows.interpolate_rgb`` runs both kinds.
        """
        i0, i1 = self.normalize(rgb0), self.normalize(rgb1)
        f01, f10 = self.compute_flows(i0, i1)
        return self.synthesize(i0, i1, f01, f10, t).frame
