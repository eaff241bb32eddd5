"""Where a model's bidirectional flows come from: OpenCV's DIS or the model's own flow U-Net.

The network module is pure torch; models whose config says ``flow="dis"`` get their flows here.
"""

from __future__ import annotations

from torch import Tensor

from .classical_flow import dis_flows
from .network import SuperSloMo
from .options import DisPreset

DEFAULT_DIS_PRESET: DisPreset = "medium"  # the preset the shipped model was trained with


def compute_flows(model: SuperSloMo, i0: Tensor, i1: Tensor,
                  dis_preset: DisPreset = DEFAULT_DIS_PRESET) -> tuple[Tensor, Tensor]:
    """Flows (F0->1, F1->0) in pixels between normalised frames (N, 3, H, W).

    ``dis_preset`` is DIS's speed/quality preset for models with DIS flows; flow-network models ignore it.
    """
    if model.flow_net is None:
        return dis_flows(i0, i1, dis_preset, to_rgb=model.denormalize)
    return model.compute_flows(i0, i1)


def interpolate_rgb(model: SuperSloMo, rgb0: Tensor, rgb1: Tensor, t: Tensor,
                    dis_preset: DisPreset = DEFAULT_DIS_PRESET) -> Tensor:
    """Frames at timesteps t (N,) between RGB frames in [0, 1] (1 or N, 3, H, W), for either kind of model."""
    i0, i1 = model.normalize(rgb0), model.normalize(rgb1)
    f01, f10 = compute_flows(model, i0, i1, dis_preset)
    return model.synthesize(i0, i1, f01, f10, t).frame
