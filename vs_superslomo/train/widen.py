"""Start a wider U-Net from a trained narrower one without changing what it computes.

Every convolution of the wide U-Net gets the narrow weights on the channels the narrow one had; the
weights from the new channels into the old ones start at zero, so the wide network's output equals the
narrow one's at step 0 and training only has to add to it (function-preserving widening, as in Chen et
al.'s Net2Net, ICLR 2016, with zero instead of split outgoing weights). The new channels keep their
default random incoming weights, so they carry a signal for the zero weights to learn from.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..network import UNet


def _old_channels(count: int, narrow_width: int, wide_width: int, *, fixed: bool = False,
                  concat: bool = False) -> Tensor:
    """Indices, in a wide layer of ``count`` channels, of the channels the narrow layer had.

    Channel counts scale with the width except the U-Net's own inputs and outputs (``fixed``); an
    up-block's second conv reads two concatenated halves (``concat``).
    """
    if fixed:
        return torch.arange(count)
    if concat:
        half = count // 2
        return torch.cat((torch.arange(half // wide_width * narrow_width),
                          half + torch.arange(half // wide_width * narrow_width)))
    return torch.arange(count // wide_width * narrow_width)


def widen_unet(narrow: UNet, wide: UNet) -> None:
    """Copy ``narrow`` into the wider ``wide`` in place so that both compute the same function."""
    narrow_width = narrow.conv1.out_channels
    wide_width = wide.conv1.out_channels
    if wide_width < narrow_width:
        raise ValueError(f"cannot widen a width-{narrow_width} U-Net to width {wide_width}")
    narrow_convs = dict(narrow.named_modules())
    with torch.no_grad():
        for name, conv in wide.named_modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            source = narrow_convs[name]
            assert isinstance(source, nn.Conv2d)
            outs = _old_channels(conv.out_channels, narrow_width, wide_width, fixed=name == "conv3")
            ins = _old_channels(conv.in_channels, narrow_width, wide_width, fixed=name == "conv1",
                                concat=name.startswith("up") and name.endswith(".conv2"))
            if len(outs) != source.out_channels or len(ins) != source.in_channels:
                raise ValueError(f"{name}: cannot place a {tuple(source.weight.shape)} conv into "
                                 f"{tuple(conv.weight.shape)}")
            conv.weight[outs] = conv.weight[outs].index_fill(1, _new(ins, conv.in_channels), 0.0)
            conv.weight[outs[:, None], ins] = source.weight
            assert conv.bias is not None and source.bias is not None
            conv.bias[outs] = source.bias


def _new(old: Tensor, count: int) -> Tensor:
    mask = torch.ones(count, dtype=torch.bool)
    mask[old] = False
    return mask.nonzero().flatten()
