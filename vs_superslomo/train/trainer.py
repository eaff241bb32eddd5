"""The resumable trainer: ``python -m vs_superslomo.train --out DIR [--config FILE] [--init WEIGHTS]``.

State (weights, optimizer, schedule, step, RNG) lives in ``DIR/state.pt`` outside git; the best
weights by validation PSNR are exported to ``DIR/best.safetensors`` with provenance. Runs unchanged
under ``torchrun`` (DistributedDataParallel); on the CPU it uses every core.
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
from ..network import FlowSource, ModelConfig, Resample, SuperSloMo, Synthesis
from .dataset import VALIDATION_SEED, TrainingBatches, real_validation, synthetic_validation
from .losses import LossWeights, total_loss
from .sources import CLIPS, PHOTO_GLOBS, STAMP_GLOB
from .synthetic import MotionRanges
from .validate import Score, model_scores
from .width import transfer_unet


@dataclass
class TrainConfig:
    width: int = 8
    resample: Resample = "bicubic"  # ModelConfig.resample: how the output samples the warped inputs
    flow: FlowSource = "network"  # ModelConfig.flow: "dis" trains only the interpolation U-Net
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
    losses: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SystemExit(f"error: unknown config keys in {path}: {sorted(unknown)}")
        if "losses" in data:
            data["losses"] = LossWeights(**data["losses"])
        return cls(**data)


class _TrainingForward(nn.Module):
    """The part wrapped by DistributedDataParallel: flows and synthesis for a batch."""

    def __init__(self, model: SuperSloMo) -> None:
        super().__init__()
        self.model = model

    def forward(self, i0: Tensor, i1: Tensor, t: Tensor) -> tuple[Synthesis, Tensor, Tensor]:
        n0, n1 = self.model.normalize(i0), self.model.normalize(i1)
        f01, f10 = self.model.compute_flows(n0, n1)
        return self.model.synthesize(n0, n1, f01, f10, t), f01, f10


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _validation_score(scores: dict[str, dict[str, Score]]) -> float:
    """What "best" means: mean real-footage PSNR over factors 2 and 4."""
    return float(np.mean([scores["real_x2"]["mean"].psnr, scores["real_x4"]["mean"].psnr]))


def validate(model: SuperSloMo, windows_per_clip: int = 6) -> dict[str, dict[str, Score]]:
    return {
        "real_x2": model_scores(model, real_validation(2, windows_per_clip)),
        "real_x4": model_scores(model, real_validation(4, windows_per_clip)),
        "synthetic_x2": model_scores(model, synthetic_validation(2)),
    }


def _summary(scores: dict[str, dict[str, Score]]) -> dict[str, Any]:
    return {k: {"psnr": round(v["mean"].psnr, 3), "ssim": round(v["mean"].ssim, 4)} for k, v in scores.items()}


def _log(out: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True)
    with open(out / "log.jsonl", "a") as f:
        f.write(line + "\n")
    tqdm.write(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run directory (state, logs, exported weights)")
    parser.add_argument("--config", type=Path, help="JSON file with TrainConfig fields")
    parser.add_argument("--init", help="start from these weights, of any width (ignored when DIR/state.pt "
                        "exists)")
    parser.add_argument("--minutes", type=float, help="stop (and save) after this much wall time")
    parser.add_argument("--max-steps", type=int, help="stop (and save) at this step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a config field, also on resume (VALUE is JSON), e.g. --set steps=4800 to "
                             "end the cosine learning-rate decay by the end of a session")
    args = parser.parse_args(argv)

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    rank = dist.get_rank() if distributed else 0
    if device.type == "cpu" and not distributed:
        torch.set_num_threads(os.cpu_count() or 1)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.pt"
    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    state: dict[str, Any] | None = None
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        cfg = TrainConfig(**{**state["config"], "losses": LossWeights(**state["config"]["losses"])})
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in {f.name for f in fields(TrainConfig)} or key == "losses":
            raise SystemExit(f"error: --set {item}: unknown config field {key!r}")
        setattr(cfg, key, json.loads(value))
    try:
        model_config = ModelConfig(width=cfg.width, output_activation=False, resample=cfg.resample, flow=cfg.flow)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    model = SuperSloMo(model_config)
    init_provenance: dict[str, Any] = {}
    if state is not None:
        model.load_state_dict(state["model"])
    elif args.init:
        init = load_model(args.init)
        if replace(init.config, flow=model_config.flow, width=model_config.width) != model_config:
            raise SystemExit(f"error: --init weights have config {init.config}, the run needs {model_config} "
                             "(only the flow source and the width may differ)")
        # A model of the other flow source still gives its interpolation U-Net; another width is
        # widened exactly or narrowed to its leading channels (train/width.py).
        transfer_unet(init.interp_net, model.interp_net)
        if model.flow_net is not None and init.flow_net is not None:
            transfer_unet(init.flow_net, model.flow_net)
        init_provenance = provenance_of(args.init)
    model.to(device).train()
    forward: nn.Module = _TrainingForward(model)
    if distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        forward = nn.parallel.DistributedDataParallel(forward, device_ids=device_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    step, best, elapsed = 0, -math.inf, float(init_provenance.get("wall_seconds", 0.0))
    base_steps = int(init_provenance.get("steps", 0))
    init_name = Path(args.init).name if args.init else None  # a resumed run reads it from its state
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, best, elapsed = int(state["step"]), float(state["best"]), float(state["elapsed"])
        base_steps = int(state.get("base_steps", 0))
        init_name = state.get("init")
        if rank < len(state["rng"]):
            rng.bit_generator.state = state["rng"][rank]
        torch.set_rng_state(state["torch_rng"])

    ranges = MotionRanges()
    data = TrainingBatches(cfg.crop, cfg.synthetic_fraction, ranges, cfg.max_cutouts)
    per_rank_batch = max(1, cfg.batch // (dist.get_world_size() if distributed else 1))

    def save_state() -> None:
        if rank != 0:
            return
        rng_states = [rng.bit_generator.state]
        torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "best": best,
                    "elapsed": elapsed, "rng": rng_states, "torch_rng": torch.get_rng_state(),
                    "config": asdict(cfg), "base_steps": base_steps, "init": init_name}, str(state_path) + ".tmp")
        os.replace(str(state_path) + ".tmp", state_path)

    def provenance(scores: dict[str, dict[str, Score]]) -> dict[str, Any]:
        return {
            "trainer": "vs_superslomo.train",
            "train_config": asdict(cfg),
            "steps": base_steps + step,  # counting the --init model's own steps
            "init": init_name,
            "wall_seconds": round(elapsed),
            "validation_seed": VALIDATION_SEED,
            "validation": _summary(scores),
            "training_clips": [c.name for c in CLIPS if c.split in ("train", "rendered")],
            "photos": [p for p, _ in PHOTO_GLOBS] + [STAMP_GLOB[0], "pypi:scikit-image"],
            "data_sources": "../shared/DATA.md",
        }

    stop_at = time.monotonic() + 60 * args.minutes if args.minutes else math.inf
    last_step = min(cfg.steps, args.max_steps) if args.max_steps else cfg.steps
    bar = tqdm(total=last_step, initial=step, disable=rank != 0, file=sys.stderr, dynamic_ncols=True)
    started = time.monotonic()
    while step < last_step and time.monotonic() < stop_at:
        ranges.max_shift = cfg.shift_start + (cfg.shift_end - cfg.shift_start) * min(1.0, step / cfg.shift_steps)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(cfg, step)
        batch = {k: v.to(device) for k, v in data.batch(rng, per_rank_batch).items()}
        syn, f01, f10 = forward(batch["i0"], batch["i1"], batch["t"])
        flow_scale = max(0.0, 1.0 - step / cfg.flow_supervision_steps)
        loss, parts = total_loss(batch, syn, f01, f10, cfg.losses, flow_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        now = time.monotonic()
        elapsed += now - started
        started = now
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", shift=f"{ranges.max_shift:.0f}")
        if step % 50 == 0 and rank == 0:
            _log(out, {"step": step, "loss": round(float(loss.detach()), 5),
                       **{k: round(v, 5) for k, v in parts.items()},
                       "lr": _lr_at(cfg, step), "shift": ranges.max_shift, "elapsed": round(elapsed)})
        if step % cfg.val_every == 0 and rank == 0:
            scores = validate(model)
            score = _validation_score(scores)
            _log(out, {"step": step, "validation": _summary(scores), "score": round(score, 3)})
            save_model(model, out / "last.safetensors", provenance(scores))
            if score > best:
                best = score
                save_model(model, out / "best.safetensors", provenance(scores))
            started = time.monotonic()
            save_state()
        elif step % 100 == 0:
            save_state()
    bar.close()
    save_state()
    if distributed:
        dist.destroy_process_group()
    return 0
