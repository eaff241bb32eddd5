"""Comparison methods and their scores: what the evaluator, ``make quality`` and training validation
compare our model with, each defined once.

A method maps (frame0, frame1, timesteps), with (3, H, W) RGB frames in [0, 1], to one frame per timestep;
it is also given the frames one interval before and after the pair (or None), which ours uses as the filter
does (quadratic motion) and the peers ignore.
Scores are PSNR and SSIM (scikit-image) on 8-bit RGB, as a user would see the frames.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor

from .classical_flow import dis_flows
from .engine import Interpolator, Neighbours
from .flows import DEFAULT_DIS_PRESET
from .network import SuperSloMo, backward_warp, consistency_trust
from .options import DisPreset

if TYPE_CHECKING:
    import vapoursynth as vs


# mvtools FlowFPS as users run it: pel 2, block 16 overlap 8 refined to block 8 overlap 4, truemotion.
MVTOOLS_SUPER = {"pel": 2, "hpad": 16, "vpad": 16}
MVTOOLS_ANALYSE = {"blksize": 16, "overlap": 8, "truemotion": True}
MVTOOLS_RECALCULATE = {"blksize": 8, "overlap": 4, "truemotion": True}
CLASSICAL_NAME = "DIS classical"  # the classical baseline's name in every table
UNREFINED_NAME = "ours, no U-Net"  # ours with Options.refine off: the fixed parts of our method alone


@dataclass
class ValidationItem:
    """Two input frames and the ground-truth frames at ``timesteps`` between them."""

    name: str
    frame0: Tensor  # (3, H, W)
    frame1: Tensor
    targets: list[Tensor]
    timesteps: list[float]
    # The inputs one window before frame0 and one after frame1, where the clip or shot has them: what the
    # filter gives a method that follows motion through more than two frames.
    before: Tensor | None = None
    after: Tensor | None = None


class Method(Protocol):
    """Frames at ``timesteps`` between two (3, H, W) RGB frames; ``before`` and ``after`` are the frames one
    interval around them, for methods that use them (None where there are none)."""

    def __call__(self, frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
                 after: Tensor | None = None) -> Sequence[Tensor]: ...


@dataclass
class Score:
    psnr: float
    ssim: float
    frames: int


def _to_uint8_hwc(x: Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def psnr(pred: Tensor, target: Tensor) -> float:
    """PSNR of a (3, H, W) frame in [0, 1] against the truth, on 8-bit RGB as a user sees it (capped at 100 dB)."""
    from skimage.metrics import peak_signal_noise_ratio

    return min(float(peak_signal_noise_ratio(_to_uint8_hwc(target), _to_uint8_hwc(pred), data_range=255)), 100.0)


def frame_scores(pred: Tensor, target: Tensor) -> tuple[float, float]:
    from skimage.metrics import structural_similarity

    ssim = float(structural_similarity(_to_uint8_hwc(target), _to_uint8_hwc(pred), data_range=255, channel_axis=2))
    return psnr(pred, target), ssim


def score_method(method: Method, items: Sequence[ValidationItem]) -> dict[str, Score]:
    """Mean PSNR/SSIM per item name (clip) and over everything (key "mean": mean over clips)."""
    per: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item in items:
        preds = method(item.frame0, item.frame1, item.timesteps, item.before, item.after)
        for pred, target in zip(preds, item.targets, strict=True):
            per[item.name].append(frame_scores(pred, target))
    out = {name: Score(float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])), len(vals))
           for name, vals in per.items()}
    if out:
        out["mean"] = Score(float(np.mean([s.psnr for s in out.values()])),
                            float(np.mean([s.ssim for s in out.values()])),
                            sum(s.frames for s in out.values()))
    return out


# truth_times' grid: times k / TIMING_STEPS of the gap.
TIMING_STEPS = 32
# A ground-truth frame counts as off its time when its truth time is this far from the nominal one.
OFF_TIME = 0.25


@dataclass
class TruthTime:
    """Where one ground-truth frame sits in time along a method's path (``truth_times``)."""

    nominal: float  # the time the frame is meant to show, as a share of the gap
    found: float  # the time whose frame matches it best
    gain_db: float  # PSNR at ``found`` over PSNR at ``nominal``: what knowing the real time would be worth


def truth_times(method: Method, item: ValidationItem, steps: int = TIMING_STEPS) -> list[TruthTime]:
    """For each ground-truth frame of ``item``, the time (k / steps, or its nominal time) at which ``method``'s
    frames between the inputs match it best by PSNR: where on the method's path the footage really is.

    Far from a frame's nominal time, the motion within the gap was uneven (a camera that holds still and then
    jumps, a robot that moves in jerks). The inputs do not say when it moved, so no interpolator can place
    such a frame, and a sharp frame at the nominal time scores below blending, the mean over every time.
    Where the frames along the path hardly differ (little motion), the time found means little; its
    ``gain_db`` is then small."""
    grid = sorted({k / steps for k in range(1, steps)} | set(item.timesteps))
    frames = method(item.frame0, item.frame1, grid, item.before, item.after)
    found = []
    for nominal, target in zip(item.timesteps, item.targets, strict=True):
        scores = [psnr(frame, target) for frame in frames]
        best = int(np.argmax(scores))
        found.append(TruthTime(nominal, grid[best], scores[best] - scores[grid.index(nominal)]))
    return found


@dataclass
class Timing:
    """How far a clip's ground truth sits from its nominal times (``truth_times``)."""

    mean_offset: float  # mean |truth time - nominal time|, in gaps
    off_share: float  # share of frames off by more than OFF_TIME
    gain_db: float  # mean PSNR gained by rendering each frame at its truth time instead of its nominal one
    frames: int


def timing_of(method: Method, items: Sequence[ValidationItem]) -> dict[str, Timing]:
    """``Timing`` per item name (clip), from the truth times of every window along ``method``'s path."""
    per: dict[str, list[TruthTime]] = defaultdict(list)
    for item in items:
        per[item.name] += truth_times(method, item)
    out = {}
    for name, times in per.items():
        offsets = np.array([abs(t.found - t.nominal) for t in times])
        out[name] = Timing(float(offsets.mean()), float(np.mean(offsets > OFF_TIME)),
                           float(np.mean([t.gain_db for t in times])), len(times))
    return out


def repeat_method(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
                  after: Tensor | None = None) -> list[Tensor]:
    """The nearer source frame."""
    return [frame0 if t < 0.5 else frame1 for t in timesteps]


def blend_method(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
                 after: Tensor | None = None) -> list[Tensor]:
    return [(1 - t) * frame0 + t * frame1 for t in timesteps]


def model_method(model: SuperSloMo, flow_scale: float = 1.0, dis_preset: DisPreset | None = None,
                 refine: bool = True) -> Method:
    """Our model through the engine, on the CPU (without its interpolation U-Net unless ``refine``)."""
    # One torch thread, the engine's default: two threads were 13x slower (4.0 s against 0.3 s for a 720x405
    # frame) with two other busy processes on two cores, and 1.06x faster on a quiet one (benchmarks/busy_core.py).
    engine = Interpolator(model, device="cpu", flow_scale=flow_scale, dis_preset=dis_preset, refine=refine)

    def run(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
            after: Tensor | None = None) -> list[Tensor]:
        around = Neighbours(None if before is None else before[None], None if after is None else after[None])
        return list(engine.render(frame0[None], frame1[None], list(timesteps), neighbours=around).frames)

    return run


def classical_method(dis_preset: DisPreset = DEFAULT_DIS_PRESET) -> Method:
    """The strongest classical baseline: DIS both ways with the model's own settings, each frame warped
    to time t along linearly scaled flows, each warp weighted by its forward-backward consistency."""

    def run(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
            after: Tensor | None = None) -> list[Tensor]:
        a, b = frame0[None].float(), frame1[None].float()
        f01, f10 = dis_flows(a, b, dis_preset)
        trust0 = consistency_trust(f10, f01)  # on frame 1's pixel grid
        trust1 = consistency_trust(f01, f10)  # on frame 0's pixel grid
        out = []
        for t in timesteps:
            # The pixel at x at time t came from x + t*F10(x) in frame 0 and x + (1-t)*F01(x) in frame 1.
            w0 = (1 - t) * trust0
            w1 = t * trust1
            g0, g1 = backward_warp(a, t * f10), backward_warp(b, (1 - t) * f01)
            blend = (1 - t) * a + t * b
            mixed = (w0 * g0 + w1 * g1 + 1e-3 * blend) / (w0 + w1 + 1e-3)
            out.append(mixed[0].clamp(0, 1))
        return out

    return run


def mvtools_flowfps(clip: vs.VideoNode, fps_num: int, fps_den: int = 1) -> vs.VideoNode:
    """mvtools FlowFPS with the settings every comparison uses."""
    import vapoursynth as vs

    core = vs.core
    sup = core.mv.Super(clip, **MVTOOLS_SUPER)
    vectors = []
    for backward in (True, False):
        v = core.mv.Analyse(sup, isb=backward, **MVTOOLS_ANALYSE)
        vectors.append(core.mv.Recalculate(sup, v, **MVTOOLS_RECALCULATE))
    return core.mv.FlowFPS(clip, sup, vectors[0], vectors[1], num=fps_num, den=fps_den)


def mvtools_method() -> Method:
    """mvtools FlowFPS (vapoursynth-mvtools) on each window, in YUV 4:4:4 16-bit to avoid rounding."""
    import vapoursynth as vs

    core = vs.core
    if not hasattr(core, "mv"):
        raise RuntimeError("mvtools is not installed (pip install vapoursynth-mvtools)")

    def run(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
            after: Tensor | None = None) -> list[Tensor]:
        factor = _even_factor(timesteps)
        planes = [frame0.numpy(), frame1.numpy()]
        h, w = planes[0].shape[1:]
        base = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=2, fpsnum=1, fpsden=1)

        def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
            out = f.copy()
            for p in range(3):
                np.copyto(np.asarray(out[p]), planes[n][p])
            return out

        yuv = core.resize.Bicubic(core.std.ModifyFrame(base, base, fill), format=vs.YUV444P16, matrix_s="709")
        back = core.resize.Bicubic(mvtools_flowfps(yuv, factor), format=vs.RGBS, matrix_in_s="709")
        return [_planes_tensor(back.get_frame(k)).clamp(0, 1) for k in range(1, factor)]

    return run


def _planes_tensor(frame: Any) -> Tensor:
    return torch.from_numpy(np.stack([np.asarray(frame[p]) for p in range(3)]).copy())


def _even_factor(timesteps: Sequence[float]) -> int:
    factor = round(1 / timesteps[0])
    if any(abs(t - (k + 1) / factor) > 1e-6 for k, t in enumerate(timesteps)):
        raise ValueError("this method needs evenly spaced timesteps k / factor")
    return factor


def minterpolate_method(frame0: Tensor, frame1: Tensor, timesteps: Sequence[float], before: Tensor | None = None,
                        after: Tensor | None = None) -> list[Tensor]:
    """ffmpeg minterpolate (mci, aobmc, bidir); it needs one frame after the pair, so B is repeated."""
    import imageio_ffmpeg

    factor = _even_factor(timesteps)
    h, w = frame0.shape[1:]
    frames = [(f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for f in (frame0, frame1, frame1)]
    res = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
         "-r", "1", "-i", "-", "-vf", f"minterpolate=fps={factor}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:scd=none",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        input=b"".join(f.tobytes() for f in frames), capture_output=True, check=True)
    out = np.frombuffer(res.stdout, np.uint8).reshape(-1, h, w, 3)
    return [torch.from_numpy(out[k].copy()).permute(2, 0, 1).float() / 255 for k in range(1, factor)]


def peer_methods(model: SuperSloMo | None = None, *, mvtools: bool = True, minterpolate: bool = False,
                 dis_preset: DisPreset | None = None, flow_scale: float = 1.0) -> dict[str, Method]:
    """The methods every table shows, by the names the tables use; ours first when a model is given, then ours
    without its interpolation U-Net (what the learned part adds is the difference between the two)."""
    methods: dict[str, Method] = {}
    if model is not None:
        methods["ours"] = model_method(model, flow_scale, dis_preset)
        methods[UNREFINED_NAME] = model_method(model, flow_scale, dis_preset, refine=False)
    methods["blend"] = blend_method
    methods[CLASSICAL_NAME] = classical_method(dis_preset or DEFAULT_DIS_PRESET)
    if mvtools:
        methods["mvtools"] = mvtools_method()
    if minterpolate:
        methods["minterpolate"] = minterpolate_method
    return methods
