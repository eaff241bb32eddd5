"""Start a U-Net of one width from a trained U-Net of another.

Wider: every convolution gets the narrow weights on the channels the narrow one had, and the weights
from the new channels into the old ones start at zero, so the wide network computes exactly what the
narrow one did at step 0 and training only has to add to it (function-preserving widening, as in
Chen et al.'s Net2Net, ICLR 2016, with zero instead of split outgoing weights). The new channels keep
their default random incoming weights, so they carry a signal for the zero weights to learn from.

Narrower: every convolution keeps the leading channels of the wide one. That is only a warm start
(the dropped channels' contributions are gone), which training recovers from quickly.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..network import UNet


def _leading_channels(count: int, width: int, other_width: int, *, fixed: bool = False,
                      concat: bool = False) -> Tensor:
    """Indices, in a layer of ``count`` channels of a width-``width`` U-Net, of the channels the same
    layer has in a narrower width-``other_width`` U-Net.

    Channel counts scale with the width except the U-Net's own inputs and outputs (``fixed``); an
    up-block's second conv reads two concatenated halves (``concat``).
    """
    if fixed:
        return torch.arange(count)
    if concat:
        half = count // 2
        kept = torch.arange(half // width * other_width)
        return torch.cat((kept, half + kept))
    return torch.arange(count // width * other_width)


def _paired_convs(wide: UNet, narrow: UNet) -> Iterator[tuple[nn.Conv2d, nn.Conv2d, Tensor, Tensor]]:
    """Every conv of ``wide`` with its twin in ``narrow`` and the output and input channels they share."""
    wide_width, narrow_width = wide.conv1.out_channels, narrow.conv1.out_channels
    narrow_convs = dict(narrow.named_modules())
    for name, conv in wide.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        twin = narrow_convs[name]
        assert isinstance(twin, nn.Conv2d)
        outs = _leading_channels(conv.out_channels, wide_width, narrow_width, fixed=name == "conv3")
        ins = _leading_channels(conv.in_channels, wide_width, narrow_width, fixed=name == "conv1",
                                concat=name.startswith("up") and name.endswith(".conv2"))
        if len(outs) != twin.out_channels or len(ins) != twin.in_channels:
            raise ValueError(f"{name}: the U-Nets' layers do not match ({tuple(twin.weight.shape)})")
        yield conv, twin, outs, ins


def widen_unet(narrow: UNet, wide: UNet) -> None:
    """Copy ``narrow`` into the wider ``wide`` in place so that both compute the same function."""
    if wide.conv1.out_channels < narrow.conv1.out_channels:
        raise ValueError(f"cannot widen a width-{narrow.conv1.out_channels} U-Net to width {wide.conv1.out_channels}")
    with torch.no_grad():
        for conv, source, outs, ins in _paired_convs(wide, narrow):
            new_ins = torch.ones(conv.in_channels, dtype=torch.bool)
            new_ins[ins] = False
            conv.weight[outs[:, None], new_ins.nonzero().flatten()] = 0.0
            conv.weight[outs[:, None], ins] = source.weight
            conv.get_parameter("bias")[outs] = source.get_parameter("bias")


def narrow_unet(wide: UNet, narrow: UNet) -> None:
    """Fill the narrower ``narrow`` in place with the leading channels of every layer of ``wide``."""
    if wide.conv1.out_channels < narrow.conv1.out_channels:
        raise ValueError(f"cannot narrow a width-{wide.conv1.out_channels} U-Net to width {narrow.conv1.out_channels}")
    with torch.no_grad():
        for conv, target, outs, ins in _paired_convs(wide, narrow):
            target.weight.copy_(conv.weight[outs[:, None], ins])
            target.get_parameter("bias").copy_(conv.get_parameter("bias")[outs])


def transfer_unet(source: UNet, target: UNet) -> None:
    """Start ``target`` from ``source``: exact when it is as wide or wider, a warm start when narrower."""
    if target.conv1.out_channels >= source.conv1.out_channels:
        widen_unet(source, target)
    else:
        narrow_unet(source, target)
