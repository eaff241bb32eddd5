"""The inference engine: padding, a per-pair flow cache, timestep batching, device and dtype.

It knows tensors and numpy arrays only; VapourSynth lives in ``filter.py``.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .fallback import fall_back, fallback_map
from .flows import DEFAULT_DIS_PRESET, compute_flows
from .network import (
    CONSISTENCY_PX,
    SIZE_MULTIPLE,
    Acceleration,
    PairFeatures,
    SuperSloMo,
    consistency_trust,
    downscaled,
    flow_upscaled,
    quadratic_acceleration,
)
from .options import FLOW_SCALES, DisPreset, Options
from .options import names as option_names

__all__ = ["FLOW_SCALES", "BoundedComputeCache", "Interpolator", "Neighbours", "PairKey", "ReadAhead", "Rendered",
           "resolve_device", "usable_cpus"]

PadMode = Literal["replicate", "reflect"]
# Default number of frame pairs whose flows stay cached: the pairs of the two frames being rendered at once,
# the pairs before and after them (quadratic motion) and the one read ahead. One 1080p pair holds two flows,
# the U-Net's half-resolution inputs and first-layer response, the fail-safe's map and its two padded frames,
# which pairs named by ``PairKey`` share with their neighbours: ~95 MB with the shipped model.
DEFAULT_CACHE_PAIRS = 5
# Full-resolution warping and fusion run in bands of rows of about this many pixels (``Fusion.rows``): at
# 1920x1080 the whole frame held ~250 MB of frame-sized tensors at once per evaluation; smaller frames are
# one band.
BAND_PIXELS = 1 << 19
# A neighbouring pair that fell back over more than this share of its frame does not bend the motion.
NEIGHBOUR_MAX_FALLBACK = 0.5
# Quadratic motion is measured on blocks of this size.
ACCELERATION_BLOCK = 4

DIS_MIN_SIDE = 16

T = TypeVar("T")
# A (1, 3, H, W) RGB frame in [0, 1] (float, or 16-bit integers read as a share of 65535), or a function giving
# one: the engine calls it only when it needs the frame, when a pair's state is not cached (the filter's frames
# then cost no conversion).
Frame = Tensor | Callable[[], Tensor]
ImageLike = TypeVar("ImageLike", np.ndarray, Tensor)


class BoundedComputeCache:
    """A thread-safe LRU cache where each key is computed at most once at a time.

    Callers asking for a key that is being computed wait for that computation instead of
    starting their own. At most ``capacity`` finished entries are kept.
    """

    @dataclass
    class _Entry:
        done: threading.Event
        value: object = None
        error: BaseException | None = None

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be at least 1")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, BoundedComputeCache._Entry] = OrderedDict()
        self.computations = 0  # how many times compute() ran; tests read it

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
                entry = self._Entry(threading.Event())
                self._entries[key] = entry
                self.computations += 1
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if owner:
            try:
                entry.value = compute()
            except BaseException as e:
                entry.error = e
                with self._lock:
                    if self._entries.get(key) is entry:
                        del self._entries[key]
                raise
            finally:
                entry.done.set()
        else:
            entry.done.wait()
            if entry.error is not None:
                raise entry.error
        return entry.value  # type: ignore[return-value]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class ReadAhead:
    """The engine's background thread, which computes the flows of pairs it will need next.

    ``close`` cancels the pairs still queued and waits for the one in progress, so that no work of a script
    outlives it: the filter closes it when its VapourSynth environment ends (vspipe done, ``--end`` reached
    while later pairs were queued, an editor reloading the script)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in the background, unless closed."""
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="slomo-ahead")
            self._pool.submit(fn, *args)

    def close(self, wait: bool = True) -> None:
        """Take no more work, drop what is queued and, with ``wait``, wait for what is running (again, if an
        earlier call did not wait)."""
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)


@dataclass(frozen=True)
class _PairState:
    """Normalised, padded frames of one pair, their full-resolution flows, what the network's timesteps share, and the
    fail-safe's fallback map (None where nothing falls back) with its mean over the unpadded frame."""

    i0: Tensor
    i1: Tensor
    f01: Tensor
    f10: Tensor
    features: PairFeatures | None  # None without refinement (``Options.refine``)
    size: tuple[int, int]  # (height, width) before padding
    fallback: Tensor | None = None
    fallback_share: float = 0.0
    # F0->1 and F1->0 averaged over ACCELERATION_BLOCK blocks, in block pixels (for quadratic motion).
    block_flows: tuple[Tensor, Tensor] | None = None


@dataclass(frozen=True)
class PairKey:
    """A flow-cache key that names the pair's two source frames: pairs sharing a frame (pair k's second is pair
    k + 1's first) then share its prepared copy (normalised and padded: 25 MB at 1920x1080) instead of holding
    one each. The frame keys must name the same frame wherever they are used."""

    first: Hashable
    second: Hashable


@dataclass(frozen=True)
class Neighbours:
    """The source frames around a pair, for quadratic motion (``Options.quadratic``): ``before`` comes
    ``gap_before`` pair intervals before the pair's first frame, ``after`` ``gap_after`` after its second (1 for
    constant frame rates), each with the flow-cache key of the pair it forms with the nearer frame. Either
    may be None (a clip's ends, a scene cut): then the motion stays straight."""

    before: Frame | None = None
    after: Frame | None = None
    before_key: Hashable | None = None
    after_key: Hashable | None = None
    gap_before: float = 1.0
    gap_after: float = 1.0


@dataclass(frozen=True)
class Rendered:
    """Frames (T, 3, H, W) and the share (0-1) of each frame that fell back to blending (``fallback.py``)."""

    frames: Tensor
    fallback: float


def padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _pad(x: Tensor, multiple: int, mode: PadMode) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    # Reflection needs the pad to be smaller than the frame; tiny frames fall back to replication.
    if mode == "reflect" and ph < h and pw < w:
        return F.pad(x, (0, pw, 0, ph), mode="reflect")
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" means CUDA when available, else CPU; anything else must name an available device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (use 'cpu', 'cuda' or 'auto')")
    return dev


def _engine_options(model: SuperSloMo, options: Options | None, values: dict[str, Any]) -> Options:
    """The options an engine runs with; a DIS preset is refused for models without DIS flows."""
    if isinstance(values.get("device"), torch.device):
        values = {**values, "device": str(values["device"])}
    if options is None:
        options = Options.from_kwargs(values)
    elif values:
        options = Options.from_kwargs({**{n: getattr(options, n) for n in option_names()}, **values})
    if options.dis_preset is not None and model.flow_net is not None:
        raise ValueError("dis_preset applies only to models with DIS flows; this model has a flow network")
    return options


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Interpolator:
    """Interpolates frames between two RGB frames with a Super SloMo model.

    The filter's options (``device``, ``fp16``, ``flow_scale``, ``threads``, ``dis_preset``; see
    ``vs_superslomo.options``) come as an :class:`Options` or as keywords. ``device`` "auto" picks CUDA
    when present; ``fp16`` None means fp16 on CUDA only; ``threads`` (None: 1) torch threads run each
    evaluation, set for it and restored after (torch keeps the count per calling thread, and sums split over
    a different count can differ in the last bit); on the CPU, evaluations called from several threads run
    side by side, as many at once as the process has CPUs for (``concurrent``). More threads for one caller
    gain little on a quiet machine and collapse on a busy one (README, Python API). Engine tuning:

    cache_pairs: how many frame pairs keep their flows cached.
    max_batch: most timesteps evaluated in one batch; None picks 1 on the CPU (measured: a batch of 3
        timesteps took 1.45x the time of three single ones at 1280x720) and 4 on CUDA.
    pad_mode: how frames are padded to the network's size multiple ("replicate" or "reflect").
    channels_last: run convolutions in channels-last memory format.
    """

    def __init__(
        self,
        model: SuperSloMo,
        options: Options | None = None,
        *,
        cache_pairs: int = DEFAULT_CACHE_PAIRS,
        max_batch: int | None = None,
        pad_mode: PadMode = "replicate",
        channels_last: bool = False,
        **option_values: Any,
    ) -> None:
        options = _engine_options(model, options, option_values)
        self.device = resolve_device(options.device)
        is_cuda = self.device.type == "cuda"
        fp16 = is_cuda if options.fp16 is None else options.fp16
        if fp16 and not is_cuda:
            raise ValueError("fp16 needs a CUDA device; on the CPU use fp16=False")
        if pad_mode not in ("replicate", "reflect"):
            raise ValueError(f"pad_mode must be 'replicate' or 'reflect', got {pad_mode!r}")
        if max_batch is None:
            max_batch = 4 if is_cuda else 1
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.threads = options.threads or 1
        self.dtype = torch.float16 if fp16 else torch.float32
        self.flow_scale = float(options.flow_scale)
        self.dis_preset: DisPreset = options.dis_preset or DEFAULT_DIS_PRESET
        self.fallback = options.fallback
        self.quadratic = options.quadratic
        self.refine = options.refine and model.refines
        self.pad_mode: PadMode = pad_mode
        self.max_batch = max_batch
        self.multiple = _padding_multiple(model, self.flow_scale, self.refine)
        # Measured on 2 x86 cores with the default width: channels-last was 2x slower, so it is opt-in.
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = self._own_copy(model)
        self.flow_cache = BoundedComputeCache(cache_pairs)
        self.frame_cache = BoundedComputeCache(cache_pairs + 1)  # prepared frames of PairKey pairs
        # On the CPU, evaluations of different frames run side by side (VapourSynth asks for frames from
        # several threads), each on ``threads`` torch threads, as many at once as the CPUs hold.
        self.concurrent = max(1, usable_cpus() // self.threads)
        self._cpu_slots = threading.BoundedSemaphore(self.concurrent) if not is_cuda else None
        self.read_ahead = ReadAhead()
        # An engine dropped without its read-ahead closed still stops the thread, though without waiting.
        weakref.finalize(self, self.read_ahead.close, False)

    def _own_copy(self, model: SuperSloMo) -> SuperSloMo:
        first = next(model.parameters())
        if first.device != self.device or first.dtype != self.dtype or self.channels_last:
            # A model shared with other engines (the filter caches loaded models) is never moved.
            model = copy.deepcopy(model)
        model = model.to(self.device, self.dtype).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    # -- tensor API -------------------------------------------------------------------------

    def _prepare(self, rgb: Tensor) -> Tensor:
        """The network's input: normalised and padded, written once into a buffer of the padded size. Integer
        frames (the filter's 16-bit RGB) are read as their share of the type's largest value."""
        x = rgb.to(self.device, non_blocking=True)
        unit = 1.0 if x.is_floating_point() else 1 / torch.iinfo(x.dtype).max
        if self.pad_mode != "replicate" or self.channels_last:
            x = self.model.normalize(torch.mul(x, unit).to(self.dtype))
            return _pad(x, self.multiple, self.pad_mode).contiguous(memory_format=self.memory_format)
        h, w = x.shape[-2:]
        out = torch.empty((*x.shape[:-2], padded_size(h, self.multiple), padded_size(w, self.multiple)),
                          dtype=self.dtype, device=self.device)
        inner = out[..., :h, :w]
        self.model.normalize(x if unit == 1.0 else torch.mul(x, unit, out=inner), out=inner)
        out[..., :h, w:] = out[..., :h, w - 1 : w]
        out[..., h:, :] = out[..., h - 1 : h, :]
        return out

    def _flows(self, i0: Tensor, i1: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Flows between padded frames, padded like them. DIS sees only the frames themselves: the flows of
        the padding would be made up, and it has no size multiple to meet (a flow network has)."""
        h, w = size
        # (OpenCV's DIS refuses frames under 12 pixels a side: tiny frames keep their padding.)
        if self.model.flow_net is None and min(h, w) >= DIS_MIN_SIDE:
            i0, i1 = i0[..., :h, :w], i1[..., :h, :w]
        s = self.flow_scale
        if s == 1.0:
            f01, f10 = compute_flows(self.model, i0, i1, self.dis_preset)
        else:
            f01, f10 = compute_flows(self.model, downscaled(i0, s), downscaled(i1, s), self.dis_preset)
            size = (i0.shape[-2], i0.shape[-1])
            f01, f10 = flow_upscaled(f01, size, s), flow_upscaled(f10, size, s)
        return _pad(f01, self.multiple, "replicate"), _pad(f10, self.multiple, "replicate")

    def _prepared(self, frame: Frame, frame_key: Hashable | None) -> tuple[Tensor, tuple[int, int]]:
        """A frame prepared for the network (``_prepare``) and its size; shared by frame key when there is one."""
        def prepare() -> tuple[Tensor, tuple[int, int]]:
            rgb = load_frame(frame)
            if rgb.dim() != 4 or rgb.shape[:2] != (1, 3):
                raise ValueError(f"frames must both be (1, 3, H, W), got {tuple(rgb.shape)}")
            return self._prepare(rgb), (rgb.shape[-2], rgb.shape[-1])

        return prepare() if frame_key is None else self.frame_cache.get(frame_key, prepare)

    def _pair_state(self, frame0: Frame, frame1: Frame, key: Hashable | None = None) -> _PairState:
        keys = (key.first, key.second) if isinstance(key, PairKey) else (None, None)
        (i0, size), (i1, size1) = self._prepared(frame0, keys[0]), self._prepared(frame1, keys[1])
        if size != size1:
            raise ValueError(f"frames must both be (1, 3, H, W) of one size, got {size} and {size1}")
        h, w = size
        f01, f10 = self._flows(i0, i1, (h, w))
        features = self.model.pair_features(i0, i1, f01, f10) if self.refine else None
        blocks = _block_flows(f01, f10) if self.quadratic else None
        if not self.fallback:
            return _PairState(i0, i1, f01, f10, features, (h, w), block_flows=blocks)
        crop = (..., slice(0, h), slice(0, w))
        weight = fallback_map(f01[crop], f10[crop], i0[crop], i1[crop])
        share = float(weight.float().mean())
        weight = _pad(weight, self.multiple, "replicate")
        return _PairState(i0, i1, f01, f10, features, (h, w), weight if share > 0 else None, share, blocks)

    def _run(self, fn: Callable[[], T]) -> T:
        with torch.inference_mode():
            if self._cpu_slots is None:
                return fn()
            with self._cpu_slots:
                previous = torch.get_num_threads()
                torch.set_num_threads(self.threads)
                try:
                    return fn()
                finally:
                    torch.set_num_threads(previous)

    def interpolate_tensors(
        self, rgb0: Tensor, rgb1: Tensor, timesteps: Sequence[float], key: Hashable | None = None,
        to_cpu: bool = True,
    ) -> Tensor:
        """(T, 3, H, W) float32 frames at ``timesteps`` between (1, 3, H, W) RGB tensors in [0, 1].

        With a ``key`` (for example the pair's frame number) the pair's flows are cached and reused
        by later calls with the same key. The result is on the CPU unless ``to_cpu`` is False.
        """
        return self.render(rgb0, rgb1, timesteps, key, to_cpu).frames

    def render(
        self, rgb0: Frame, rgb1: Frame, timesteps: Sequence[float], key: Hashable | None = None,
        to_cpu: bool = True, neighbours: Neighbours | None = None,
    ) -> Rendered:
        """:meth:`interpolate_tensors`' frames, with the share of them that fell back to blending. With
        ``neighbours`` (and ``quadratic`` on) pixels follow quadratic paths through the frames around the pair.
        Frames may come as functions (``Frame``), called only if the pair's state is not cached."""
        _check_timesteps(timesteps)
        if isinstance(rgb0, Tensor) and isinstance(rgb1, Tensor):
            _check_pair(rgb0, rgb1)
        state = self._state(rgb0, rgb1, key)
        around = self._neighbour_states(rgb0, rgb1, neighbours)

        def render_timesteps() -> Tensor:
            acceleration = self._acceleration(state, *around, neighbours)
            outs = []
            for start in range(0, len(timesteps), self.max_batch):
                chunk = torch.tensor(timesteps[start : start + self.max_batch], device=self.device)
                frames = self._fused(state, chunk, acceleration)
                outs.append(frames.cpu() if to_cpu else frames)
            return torch.cat(outs)

        return Rendered(self._run(render_timesteps), state.fallback_share)

    def _fused(self, state: _PairState, t: Tensor, acceleration: Acceleration | None) -> Tensor:
        """Float32 frames at timesteps ``t``, unpadded and clamped, their full-resolution part band by band."""
        fusion = self.model.fusion(state.i0, state.i1, state.f01, state.f10, t, state.features, acceleration,
                                   self.refine)
        h, w = state.size
        frames = torch.empty((t.shape[0], 3, h, w), dtype=torch.float32, device=self.device)
        step = max(1, BAND_PIXELS // state.i0.shape[-1])
        for top in range(0, h, step):
            bottom = min(h, top + step)
            rows = fusion.rows(top, bottom).frame
            if state.fallback is not None:
                rgb = [self.model.denormalize(x[..., top:bottom, :]) for x in (state.i0, state.i1)]
                rows = fall_back(rows, rgb[0], rgb[1], t, state.fallback[..., top:bottom, :])
            frames[..., top:bottom, :] = rows[..., :w].clamp(0, 1)
        return frames

    def _neighbour_states(self, rgb0: Frame, rgb1: Frame, neighbours: Neighbours | None
                          ) -> tuple[_PairState | None, _PairState | None]:
        """The states of the pairs before and after this one (cached under their keys), where usable."""
        if neighbours is None or not self.quadratic:
            return None, None
        n = neighbours
        before = None if n.before is None else self._state(n.before, rgb0, n.before_key)
        after = None if n.after is None else self._state(rgb1, n.after, n.after_key)
        # A neighbour pair that mostly fell back (a missed cut, motion not found) says nothing about this one.
        return (before if before is not None and before.fallback_share < NEIGHBOUR_MAX_FALLBACK else None,
                after if after is not None and after.fallback_share < NEIGHBOUR_MAX_FALLBACK else None)

    def _acceleration(self, state: _PairState, before: _PairState | None, after: _PairState | None,
                      neighbours: Neighbours | None) -> Acceleration | None:
        """The pair's quadratic motion, measured and kept on 4x4 blocks (it is smooth; 1/16 of the cost). Only
        with frames on both sides: one side's acceleration alone cannot be checked against the other's, and a
        still pair beside a moving one would drift (a still window of a hand-held clip lost 3 dB that way)."""
        if neighbours is None or before is None or after is None:
            return None
        # (States have block flows whenever quadratic motion is on, the only way neighbours get here.)
        if state.block_flows is None or before.block_flows is None or after.block_flows is None:
            return None
        f01, f10 = state.block_flows
        pixels = CONSISTENCY_PX / ACCELERATION_BLOCK
        before_f01, f0_before = before.block_flows
        f1_after, after_f10 = after.block_flows
        trust_before = consistency_trust(f0_before, before_f01, pixels)
        trust_after = consistency_trust(f1_after, after_f10, pixels)
        return quadratic_acceleration(f01, f0_before, neighbours.gap_before, trust_before,
                                      f10, f1_after, neighbours.gap_after, trust_after, 1 / ACCELERATION_BLOCK)

    def _state(self, rgb0: Frame, rgb1: Frame, key: Hashable | None) -> _PairState:
        def compute() -> _PairState:
            return self._run(lambda: self._pair_state(rgb0, rgb1, key))

        return compute() if key is None else self.flow_cache.get(key, compute)

    def prepare_ahead(self, rgb0: Frame, rgb1: Frame, key: Hashable) -> None:
        """Start computing a pair's flows in the background, on the CPU, unless they are cached or on their way.

        The filter calls this with a pair after the one it renders: at factor 2 half of the output frames are
        source frames, so the frames requested at once include one interpolated frame at most, and a later
        pair's flows would otherwise wait for it. With quadratic motion the next pair's flows are needed at
        once (its frame is the pair's neighbour), so the pair after that is the one prepared.
        """
        if self._cpu_slots is None or self.concurrent < 2 or key in self.flow_cache:
            return
        self.read_ahead.submit(self._state, rgb0, rgb1, key)

    # -- image API --------------------------------------------------------------------------

    def interpolate(
        self, img0: ImageLike, img1: ImageLike, timesteps: Sequence[float], key: Hashable | None = None
    ) -> list[ImageLike]:
        """One HxWx3 float32 RGB frame per timestep between HxWx3 RGB frames in [0, 1].

        Accepts numpy arrays or torch tensors and returns the same kind.
        """
        as_numpy = isinstance(img0, np.ndarray)
        t0, t1 = (_hwc_to_tensor(x) for x in (img0, img1))
        out = self.interpolate_tensors(t0, t1, timesteps, key).permute(0, 2, 3, 1)
        if as_numpy:
            return [np.ascontiguousarray(f.numpy()) for f in out]  # type: ignore[misc]
        return list(out)


def _padding_multiple(model: SuperSloMo, flow_scale: float, refine: bool) -> int:
    """What the padded frames' sides are multiples of: the U-Nets' five poolings where U-Nets run (a flow
    network at ``flow_scale`` times its own scale, the interpolation U-Net at its own). Without a U-Net, only the
    acceleration blocks' size and DIS's smallest frame (frames under it keep their padding) count: 1280x720
    is then not padded to 1280x768 (+6.7% pixels) and 640x360 goes to 640x368, not 640x384."""
    if refine or model.flow_net is not None:
        flow_multiple = round(SIZE_MULTIPLE / (flow_scale * model.config.flow_net_scale))
        return math.lcm(flow_multiple, model.size_multiple, ACCELERATION_BLOCK)
    return math.lcm(DIS_MIN_SIDE, ACCELERATION_BLOCK)


def _block_flows(f01: Tensor, f10: Tensor) -> tuple[Tensor, Tensor]:
    b = ACCELERATION_BLOCK
    return F.avg_pool2d(f01, b) / b, F.avg_pool2d(f10, b) / b


def load_frame(frame: Frame) -> Tensor:
    """The tensor of a ``Frame`` (calling it if it is a function)."""
    return frame if isinstance(frame, Tensor) else frame()


def _check_pair(rgb0: Tensor, rgb1: Tensor) -> None:
    if rgb0.shape != rgb1.shape or rgb0.dim() != 4 or rgb0.shape[:2] != (1, 3):
        raise ValueError(f"frames must both be (1, 3, H, W), got {tuple(rgb0.shape)} and {tuple(rgb1.shape)}")


def _check_timesteps(timesteps: Sequence[float]) -> None:
    if len(timesteps) == 0:
        raise ValueError("at least one timestep is needed")
    for t in timesteps:
        if not 0.0 < float(t) < 1.0:
            raise ValueError(f"timesteps must lie strictly between 0 and 1, got {t!r}")


def _hwc_to_tensor(img: np.ndarray | Tensor) -> Tensor:
    t = torch.from_numpy(np.asarray(img)) if isinstance(img, np.ndarray) else img
    if t.dim() != 3 or t.shape[2] != 3:
        raise ValueError(f"frames must be HxWx3 RGB, got shape {tuple(t.shape)}")
    return t.to(torch.float32).permute(2, 0, 1).unsqueeze(0)
