"""Initialisation scales of the paper's text and the authors' code (`registry.RECIPES`)."""

from __future__ import annotations

import math

from slotsweep.registry import RECIPES


def fans(weight_shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear (out, in) or conv (out, in, kh, kw) weight; K not counted."""
    receptive = math.prod(weight_shape[2:])
    return weight_shape[1] * receptive, weight_shape[0] * receptive


def value_sigma(weight_shape: tuple[int, ...], recipe: str) -> float:
    """Bound sigma of the candidate values U(-sigma, sigma)."""
    fan_in, fan_out = fans(weight_shape)
    return math.sqrt(RECIPES.get(recipe).sigma_numerator / (fan_in + fan_out))


def default_score_lambda(is_conv: bool, recipe: str) -> float:
    """Scores start as U(0, lambda * sigma): the recipe's lambda for convs or FC layers."""
    spec = RECIPES.get(recipe)
    return spec.score_lambda_conv if is_conv else spec.score_lambda_fc
