"""The model files in models/: what each one is claimed to have learned, measured on photographs it never saw."""

from __future__ import annotations

import torch
from skimage import data as skdata

from vs_superslomo import Interpolator, SuperSloMo, load_model
from vs_superslomo.network import backward_warp
from vs_superslomo.train.losses import end_point_ratio

# scikit-image's photographs are not among the training photos (train/sources.py, PHOTO_GLOBS)
PANS = [(photo, motion) for photo in ("astronaut", "coffee", "chelsea", "rocket")
        for motion in ((9.5, -6.0), (-3.0, 2.0), (20.0, 4.0))]


def _pan_error_ratio(model: SuperSloMo, photo: str, motion: tuple[float, float]) -> float:
    """End-point error of the model's F0->1 for a photograph panned by ``motion`` (pixels, x then y) over that of
    zero flow, away from the borders that the pan uncovers."""
    image = torch.tensor(getattr(skdata, photo)()[:256, :256] / 255.0, dtype=torch.float32).permute(2, 0, 1)[None]
    true = torch.tensor(motion).view(1, 2, 1, 1).expand(1, 2, 256, 256)
    moved = backward_warp(image, -true)  # frame 1 shows frame 0's content moved by `motion`
    with torch.no_grad():
        flow, _ = model.eval().compute_flows(model.normalize(image), model.normalize(moved))
    inside = torch.zeros(1, 256, 256)
    inside[:, 32:-32, 32:-32] = 1.0
    return end_point_ratio(flow, true, inside)


def _mean_ratio(model: SuperSloMo) -> float:
    return sum(_pan_error_ratio(model, photo, motion) for photo, motion in PANS) / len(PANS)


def test_the_two_network_models_flow_unet_has_learned_motion() -> None:
    """Model card, "The two-network model": at most half of zero flow's error, where the same network with a
    fresh flow U-Net does no better than zero flow (so the measure can fail)."""
    trained = load_model("two-network")
    assert trained.flow_net is not None
    torch.manual_seed(0)
    assert _mean_ratio(SuperSloMo(trained.config)) > 0.9
    assert _mean_ratio(trained) <= 0.5


def test_the_two_network_model_runs_without_its_untrained_interpolation_unet() -> None:
    """A flow-only run: its interpolation U-Net's output layer is zero, so the engine skips it (refine=False)."""
    model = load_model("two-network")
    assert not model.refines and not Interpolator(model, device="cpu").refine
