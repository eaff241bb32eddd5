"""The resumable trainer: ``python -m vs_superslomo.train --out DIR [--config FILE] [--init WEIGHTS]``.

State (weights, optimizer, schedule, step, RNG) lives in ``DIR/state.pt`` outside git; the best weights by
validation PSNR (by the flow ratio in flow-only runs) are exported to ``DIR/best.safetensors`` with provenance.
Runs unchanged under ``torchrun`` (DistributedDataParallel); on the CPU it uses every core unless ``--threads``
says otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from ..checkpoint import load_model, provenance_of, save_model
from ..flows import compute_flows
from ..methods import ValidationItem, classical_method, score_method
from ..network import ModelConfig, SuperSloMo, Synthesis
from .dataset import (
    VALIDATION_SEED,
    FlowItem,
    TrainingBatches,
    real_validation,
    synthetic_flow_validation,
    synthetic_validation,
)
from .losses import LossWeights, total_loss
from .sources import CLIPS, PHOTO_GLOBS, STAMP_GLOB
from .synthetic import MotionRanges
from .validate import Score, flow_ratio, model_scores
from .width import transfer_unet

# The model a run trains unless its config says otherwise: ModelConfig's fields sit at the top level of
# a config file ({"width": 4, "flow": "dis", ...}) next to the training fields.
DEFAULT_RUN_MODEL = ModelConfig(width=8, resample="bicubic", flow="network")
_MODEL_KEYS = {f.name for f in fields(ModelConfig)}

# What a field left at None means, by flow source. A flow U-Net learns no motion from a few rigid motions
# per batch, nor with its deep layers' first gradients (~1e-12) below Adam's default eps (model card,
# "two-network model"); DIS models have no flow U-Net and keep the settings they were trained with.
_FLOW_SOURCE_DEFAULTS: dict[str, dict[str, float]] = {
    "network": {"background_ripple": 0.25, "transpose": 0.5, "adam_eps": 1e-12, "flow_head_lr": 1.0},
    "dis": {"background_ripple": 0.0, "transpose": 0.0, "adam_eps": 1e-8, "flow_head_lr": 1.0},
}


@dataclass
class TrainConfig:
    model: ModelConfig = DEFAULT_RUN_MODEL
    crop: int = 224
    batch: int = 6
    steps: int = 40000  # the length of the learning-rate schedule
    lr: float = 3e-4
    min_lr: float = 2e-5
    warmup: int = 200
    synthetic_fraction: float = 0.6
    shift_start: float = 8.0  # curriculum: largest synthetic motion at step 0 ...
    shift_end: float = 64.0  # ... and after `shift_steps`
    shift_steps: int = 6000
    flow_supervision_steps: int = 8000  # the end-point-error term fades out over these steps
    val_every: int = 500
    seed: int = 1
    max_cutouts: int | None = None
    locked_off: float = 0.25  # share of synthetic scenes with a still camera
    background_ripple: float | None = None  # smooth non-rigid background motion, as a share of the shift
    transpose: float | None = None  # share of synthetic samples with x and y exchanged
    adam_eps: float | None = None
    flow_head_lr: float | None = None  # learning-rate multiplier of the flow U-Net's output layer
    # False: the flow U-Net stays as --init gave it and only the interpolation U-Net learns, on those flows
    # (the paper trains both at once; ours learns motion only from the end-point error, model card).
    train_flow_net: bool = True
    losses: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        for key in _FLOW_SOURCE_DEFAULTS[self.model.flow]:
            setattr(self, key, self.setting(key))
        if not 0 <= self.locked_off <= 1:
            raise ValueError(f"locked_off must be between 0 and 1, got {self.locked_off}")
        if not self.train_flow_net and self.model.flow != "network":
            raise ValueError("train_flow_net false needs a flow U-Net (flow \"network\")")
        if not self.train_flow_net and self.losses.flow_only:
            raise ValueError("train_flow_net false with only the end-point error leaves nothing to train")
        multiple = self.model.size_multiple
        if self.crop % multiple:
            raise ValueError(f"crop must be a multiple of {multiple} with unet_scale {self.model.unet_scale} "
                             f"and flow_net_scale {self.model.flow_net_scale}, got {self.crop}")

    def setting(self, key: str) -> float:
        """A field that defaults by flow source (``_FLOW_SOURCE_DEFAULTS``), resolved."""
        value = getattr(self, key)
        return float(_FLOW_SOURCE_DEFAULTS[self.model.flow][key] if value is None else value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From the flat form of config files and saved states; unknown keys are refused."""
        own = {f.name for f in fields(cls)} - {"model"}
        unknown = sorted(set(data) - own - _MODEL_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        model = {k: v for k, v in data.items() if k in _MODEL_KEYS}
        values = {k: v for k, v in data.items() if k in own}
        if "losses" in values:
            values["losses"] = LossWeights(**values["losses"])
        return cls(model=replace(DEFAULT_RUN_MODEL, **model), **values)

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k != "model"}
        return {**asdict(self.model), **flat}

    def with_setting(self, key: str, value: Any) -> TrainConfig:
        """A copy with one flat field, or one loss weight (``losses.flow``), changed (``--set``)."""
        data = self.to_dict()
        group, _, name = key.partition(".")
        if group == "losses" and name in data["losses"]:
            return TrainConfig.from_dict({**data, "losses": {**data["losses"], name: value}})
        if key == "losses" or key not in data:
            raise ValueError(f"unknown config field {key!r}")
        return TrainConfig.from_dict({**data, key: value})


class _TrainingForward(nn.Module):
    """The part wrapped by DistributedDataParallel: flows and synthesis for a batch."""

    def __init__(self, model: SuperSloMo) -> None:
        super().__init__()
        self.model = model

    def forward(self, i0: Tensor, i1: Tensor, t: Tensor, synthesis: bool = True
                ) -> tuple[Synthesis | None, Tensor, Tensor]:
        n0, n1 = self.model.normalize(i0), self.model.normalize(i1)
        f01, f10 = compute_flows(self.model, n0, n1)
        return (self.model.synthesize(n0, n1, f01, f10, t) if synthesis else None), f01, f10


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _validation_score(scores: dict[str, dict[str, Score]]) -> float:
    """What "best" means: mean real-footage PSNR over factors 2 and 4."""
    return float(np.mean([scores["real_x2"]["mean"].psnr, scores["real_x4"]["mean"].psnr]))


def _validation_items(windows_per_clip: int) -> dict[str, list[ValidationItem]]:
    return {"real_x2": real_validation(2, windows_per_clip), "real_x4": real_validation(4, windows_per_clip),
            "synthetic_x2": synthetic_validation(2)}


def validate(model: SuperSloMo, windows_per_clip: int = 6) -> dict[str, dict[str, Score]]:
    """PSNR/SSIM per validation set; ``flow_ratio`` over ``synthetic_flow_validation()`` is logged beside it."""
    return {name: model_scores(model, items) for name, items in _validation_items(windows_per_clip).items()}


def classical_baseline(windows_per_clip: int = 6) -> dict[str, dict[str, Score]]:
    """The classical DIS baseline on the same validation items: what the network must beat."""
    with torch.inference_mode():
        return {name: score_method(classical_method(), items)
                for name, items in _validation_items(windows_per_clip).items()}


def _summary(scores: dict[str, dict[str, Score]]) -> dict[str, Any]:
    return {k: {"psnr": round(v["mean"].psnr, 3), "ssim": round(v["mean"].ssim, 4)} for k, v in scores.items()}


def _log(out: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True)
    with open(out / "log.jsonl", "a") as f:
        f.write(line + "\n")
    tqdm.write(line, file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run directory (state, logs, exported weights)")
    parser.add_argument("--config", type=Path, help="JSON file with TrainConfig fields (and ModelConfig's)")
    parser.add_argument("--init", help="start from these weights, of any width (ignored when DIR/state.pt "
                        "exists)")
    parser.add_argument("--minutes", type=float, help="stop (and save) after this much wall time")
    parser.add_argument("--max-steps", type=int, help="stop (and save) at this step")
    parser.add_argument("--threads", type=int, help="torch threads on the CPU (default: every core)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a config field, also on resume (VALUE is JSON), e.g. --set steps=4800 to "
                             "end the cosine learning-rate decay by the end of a session")
    return parser


@dataclass
class Placement:
    """Where this process trains: its device, rank, and whether it is one of several (torchrun)."""

    device: torch.device
    rank: int
    world: int

    @classmethod
    def start(cls, threads: int | None = None) -> Placement:
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        if distributed:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            if torch.cuda.is_available():
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(device)
        elif device.type == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)
        return cls(device, dist.get_rank() if distributed else 0, dist.get_world_size() if distributed else 1)

    @property
    def distributed(self) -> bool:
        return self.world > 1


@dataclass
class Progress:
    """Everything besides weights and optimizer that a resumed run continues from; saved in DIR/state.pt."""

    step: int = 0
    best: float = -math.inf
    elapsed: float = 0.0  # wall seconds, counting the --init model's own training
    base_steps: int = 0  # the --init model's own steps
    init: str | None = None  # the --init model's file name
    rng: list[dict[str, Any]] = field(default_factory=list)
    torch_rng: Tensor | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})


def _initial_model(cfg: TrainConfig, init: str | None) -> tuple[SuperSloMo, Progress]:
    """A new model, its U-Nets taken from ``init`` (any width, either flow source) when given."""
    model = SuperSloMo(cfg.model)
    if cfg.losses.flow_only:
        # Never trained in such a run: a U-Net that outputs zeros fuses as the engine's refine=False does.
        for parameter in model.interp_net.conv3.parameters():
            nn.init.zeros_(parameter)
    if not init:
        return model, Progress()
    source = load_model(init)
    m = cfg.model
    flow_net_shape = ("flow_norm", "flow_net_scale", "flow_correlation", "flow_correlation_scale", "flow_peak",
                      "flow_residual", "flow_contrast")
    if replace(source.config, flow=m.flow, width=m.width, unet_scale=m.unet_scale,
               **{k: getattr(m, k) for k in flow_net_shape}) != m:
        raise SystemExit(f"error: --init weights have config {source.config}, the run needs {m} "
                         "(only the flow source, the width, the U-Nets' scales and the flow U-Net's form may "
                         "differ)")
    # A model of the other flow source still gives its interpolation U-Net; another width is
    # widened exactly or narrowed to its leading channels (train/width.py).
    transfer_unet(source.interp_net, model.interp_net)
    # A flow U-Net of another form (normalisation, scale, correlation) computes something else here.
    same_flow_net = all(getattr(source.config, k) == getattr(m, k) for k in flow_net_shape)
    if model.flow_net is not None and source.flow_net is not None and same_flow_net:
        transfer_unet(source.flow_net, model.flow_net)
    provenance = provenance_of(init)
    return model, Progress(elapsed=float(provenance.get("wall_seconds", 0.0)),
                           base_steps=int(provenance.get("steps", 0)), init=Path(init).name)


def _config(args: argparse.Namespace, state: dict[str, Any] | None) -> TrainConfig:
    try:
        if state is not None:
            cfg = TrainConfig.from_dict(state["config"])
        elif args.config:
            cfg = TrainConfig.from_dict(json.loads(args.config.read_text()))
        else:
            cfg = TrainConfig()
        for item in args.set:
            key, _, value = item.partition("=")
            cfg = cfg.with_setting(key, json.loads(value))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return cfg


def _parameter_groups(model: SuperSloMo, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One group, or two when the flow U-Net's output layer learns faster (``flow_head_lr``).

    That layer's outputs are pixels, up to tens of them, where every other layer works at unit scale; Adam
    moves each weight by about the learning rate per step whatever its gradient, so at the common rate the
    flows grow too slowly to follow the labels.
    """
    trained = [p for p in model.parameters() if p.requires_grad]
    scale = cfg.setting("flow_head_lr")
    if model.flow_net is None or scale == 1.0 or not cfg.train_flow_net:
        return [{"params": trained}]
    head = list(model.flow_net.conv3.parameters())
    rest = [p for p in trained if all(p is not h for h in head)]
    return [{"params": rest}, {"params": head, "lr_scale": scale}]


class Run:
    """One training run: model, optimizer, data and progress, saved and resumed as a whole."""

    def __init__(self, args: argparse.Namespace, place: Placement) -> None:
        self.out: Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "state.pt"
        self.place = place
        state = torch.load(self.state_path, map_location="cpu", weights_only=True) \
            if self.state_path.exists() else None
        self.cfg = _config(args, state)
        self.model, self.progress = _initial_model(self.cfg, None if state else args.init)
        if not self.cfg.train_flow_net:
            if state is None and not args.init:
                raise SystemExit("error: train_flow_net false keeps the flow U-Net as it starts: give --init "
                                 "weights with a trained one")
            assert self.model.flow_net is not None  # TrainConfig checks the flow source
            self.model.flow_net.requires_grad_(False)
        self.model.to(place.device).train()
        self.forward: nn.Module = _TrainingForward(self.model)
        if place.distributed:
            device_ids = [place.device.index] if place.device.type == "cuda" else None
            # Flow-only runs leave the interpolation U-Net out of the graph.
            self.forward = nn.parallel.DistributedDataParallel(self.forward, device_ids=device_ids,
                                                               find_unused_parameters=self.cfg.losses.flow_only)
        self.optimizer = torch.optim.AdamW(_parameter_groups(self.model, self.cfg), lr=self.cfg.lr,
                                           weight_decay=1e-4, eps=self.cfg.setting("adam_eps"))
        self.rng = np.random.default_rng(self.cfg.seed + 1000 * place.rank)
        if state is not None:
            self._restore(state)
        self.ranges = MotionRanges(locked_off=self.cfg.locked_off,
                                   background_ripple=self.cfg.setting("background_ripple"),
                                   transpose=self.cfg.setting("transpose"))
        self.data = TrainingBatches(self.cfg.crop, self.cfg.synthetic_fraction, self.ranges, self.cfg.max_cutouts)
        self.per_rank_batch = max(1, self.cfg.batch // place.world)
        self.baseline: dict[str, Any] | None = None
        self.flow_items: list[FlowItem] | None = None

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress.from_state(state)
        if self.place.rank < len(self.progress.rng):
            self.rng.bit_generator.state = self.progress.rng[self.place.rank]
        if self.progress.torch_rng is not None:
            torch.set_rng_state(self.progress.torch_rng)

    def save_state(self) -> None:
        if self.place.rank != 0:
            return
        self.progress.rng = [dict(self.rng.bit_generator.state)]
        self.progress.torch_rng = torch.get_rng_state()
        tmp = Path(str(self.state_path) + ".tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "config": self.cfg.to_dict(), **asdict(self.progress)}, tmp)
        os.replace(tmp, self.state_path)

    def provenance(self, scores: dict[str, dict[str, Score]]) -> dict[str, Any]:
        p = self.progress
        return {
            "trainer": "vs_superslomo.train",
            "train_config": self.cfg.to_dict(),
            "steps": p.base_steps + p.step,  # counting the --init model's own steps
            "init": p.init,
            "wall_seconds": round(p.elapsed),
            "validation_seed": VALIDATION_SEED,
            "validation": _summary(scores),
            "validation_classical_baseline": self.baseline,
            "training_clips": [c.name for c in CLIPS if c.split in ("train", "rendered")],
            "photos": [p for p, _ in PHOTO_GLOBS] + [STAMP_GLOB[0]],
            "data_sources": "../shared/DATA.md",
        }

    def train_step(self) -> dict[str, float]:
        cfg, step = self.cfg, self.progress.step
        self.ranges.max_shift = cfg.shift_start + (cfg.shift_end - cfg.shift_start) * min(1.0, step / cfg.shift_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = _lr_at(cfg, step) * group.get("lr_scale", 1.0)
        batch = {k: v.to(self.place.device) for k, v in self.data.batch(self.rng, self.per_rank_batch).items()}
        syn, f01, f10 = self.forward(batch["i0"], batch["i1"], batch["t"], not cfg.losses.flow_only)
        epe_fade = max(0.0, 1.0 - step / cfg.flow_supervision_steps)
        loss, parts = total_loss(batch, syn, f01, f10, cfg.losses, epe_fade)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.progress.step += 1
        return {"loss": float(loss.detach()), **parts}

    def validate_and_export(self) -> None:
        if self.flow_items is None:
            self.flow_items = synthetic_flow_validation()
        ratio = flow_ratio(self.model, self.flow_items)
        record: dict[str, Any] = {"step": self.progress.step, "flow_ratio": round(ratio, 4)}
        scores: dict[str, dict[str, Score]] = {}
        if self.cfg.losses.flow_only:  # the interpolation U-Net is not trained: only the flows count
            score = -ratio
        else:
            if self.baseline is None:  # it does not change during a run: scored once
                self.baseline = _summary(classical_baseline())
            scores = validate(self.model)
            score = _validation_score(scores)
            record.update(validation=_summary(scores), score=round(score, 3), classical_baseline=self.baseline)
        _log(self.out, record)
        save_model(self.model, self.out / "last.safetensors", self.provenance(scores))
        if score > self.progress.best:
            self.progress.best = score
            save_model(self.model, self.out / "best.safetensors", self.provenance(scores))

    def after_step(self, losses: dict[str, float]) -> None:
        """Logging, validation and saving on their cadences."""
        step, rank = self.progress.step, self.place.rank
        if step % 50 == 0 and rank == 0:
            _log(self.out, {"step": step, **{k: round(v, 5) for k, v in losses.items()},
                            "lr": _lr_at(self.cfg, step), "shift": self.ranges.max_shift,
                            "elapsed": round(self.progress.elapsed)})
        if step % self.cfg.val_every == 0 and rank == 0:
            self.validate_and_export()
            self.save_state()
        elif step % 100 == 0:
            self.save_state()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    place = Placement.start(args.threads)
    run = Run(args, place)
    stop_at = time.monotonic() + 60 * args.minutes if args.minutes else math.inf
    last_step = min(run.cfg.steps, args.max_steps) if args.max_steps else run.cfg.steps
    bar = tqdm(total=last_step, initial=run.progress.step, disable=place.rank != 0, file=sys.stderr,
               dynamic_ncols=True)
    while run.progress.step < last_step and time.monotonic() < stop_at:
        started = time.monotonic()
        losses = run.train_step()
        run.progress.elapsed += time.monotonic() - started
        bar.update(1)
        bar.set_postfix(loss=f"{losses['loss']:.4f}", shift=f"{run.ranges.max_shift:.0f}")
        run.after_step(losses)
    bar.close()
    run.save_state()
    if place.distributed:
        dist.destroy_process_group()
    return 0
