"""Convert an original Super-SloMo checkpoint to our safetensors format.

    python -m vs_superslomo.convert SuperSloMo.ckpt superslomo.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checkpoint import ModelFileError, load_original_checkpoint, save_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vs_superslomo.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="original SuperSloMo.ckpt (avinashpaliwal/Super-SloMo)")
    parser.add_argument("output", type=Path, help="output .safetensors file")
    args = parser.parse_args(argv)
    try:
        model = load_original_checkpoint(args.checkpoint)
        save_model(model, args.output, {"converted_from": args.checkpoint.name,
                                        "origin": "avinashpaliwal/Super-SloMo checkpoint format"})
    except (ModelFileError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
