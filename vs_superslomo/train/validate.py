"""Training validation: the model's scores on validation items, with the methods module's scoring, and how
well its flows match the synthetic labels.

``python -m vs_superslomo.train.validate MODEL`` prints a model's flow ratio on the synthetic validation set.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from ..checkpoint import load_model
from ..flows import compute_flows
from ..methods import Score, model_method, score_method
from ..network import SuperSloMo
from .dataset import FlowItem, ValidationItem, synthetic_flow_validation
from .losses import end_point_ratio


def model_scores(model: SuperSloMo, items: Sequence[ValidationItem]) -> dict[str, Score]:
    was_training = model.training
    try:
        with torch.inference_mode():
            return score_method(model_method(model), items)
    finally:
        model.train(was_training)


def flow_ratio(model: SuperSloMo, items: Sequence[FlowItem]) -> float:
    """The model's F0->1 end-point error over that of zero flow, pooled over the items' valid pixels."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            flows = [compute_flows(model, model.normalize(i.frame0[None].to(device)),
                                   model.normalize(i.frame1[None].to(device)))[0][0].cpu() for i in items]
    finally:
        model.train(was_training)
    return end_point_ratio(torch.stack(flows), torch.stack([i.flow for i in items]),
                           torch.stack([i.valid for i in items]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.train.validate", description=__doc__)
    parser.add_argument("model", help="a .safetensors model file")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ratio = flow_ratio(load_model(args.model), synthetic_flow_validation())
    print(f"synthetic validation F0->1 end-point error over zero flow's: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
