"""Training validation: the model's scores on validation items, with the methods module's scoring."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..methods import Score, model_method, score_method
from ..network import SuperSloMo
from .dataset import ValidationItem


def model_scores(model: SuperSloMo, items: Sequence[ValidationItem]) -> dict[str, Score]:
    was_training = model.training
    try:
        with torch.inference_mode():
            return score_method(model_method(model), items)
    finally:
        model.train(was_training)
