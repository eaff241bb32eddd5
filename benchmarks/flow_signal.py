"""Short CPU runs of the trainer that track only the flow U-Net's learning of motion.

``python benchmarks/flow_signal.py --out DIR --config FILE [--set KEY=VALUE ...] --steps N --every K``
trains with the trainer's own step (vs_superslomo.train.trainer.Run) and, every K steps, appends the
synthetic validation's F0->1 end-point error over zero flow's (``flow_ratio``) to DIR/ratio.jsonl, skipping
the trainer's slow real-footage validation. One torch thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vs_superslomo.train.dataset import synthetic_flow_validation
from vs_superslomo.train.trainer import Placement, Run, _parser
from vs_superslomo.train.validate import flow_ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--every", type=int, default=100)
    args, rest = parser.parse_known_args()
    train_args = _parser().parse_args(rest)
    place = Placement.start(train_args.threads or 1)
    run = Run(train_args, place)
    items = synthetic_flow_validation()
    log = run.out / "ratio.jsonl"
    started = time.monotonic()
    while run.progress.step < args.steps:
        losses = run.train_step()
        if run.progress.step % args.every == 0:
            record = {"step": run.progress.step, "minutes": round((time.monotonic() - started) / 60, 2),
                      "ratio": round(flow_ratio(run.model, items), 4),
                      **{k: round(v, 4) for k, v in losses.items()}}
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    run.save_state()
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
