"""Initialisation scales of ../shared/paper.md: the paper's text and the authors' code."""

from __future__ import annotations

import math


def fans(weight_shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear (out, in) or conv (out, in, kh, kw) weight; K not counted."""
    receptive = math.prod(weight_shape[2:])
    return weight_shape[1] * receptive, weight_shape[0] * receptive


def value_sigma(weight_shape: tuple[int, ...], recipe: str) -> float:
    """Bound sigma of the candidate values U(-sigma, sigma)."""
    fan_in, fan_out = fans(weight_shape)
    numerator = 2.0 if recipe == "paper" else 6.0
    return math.sqrt(numerator / (fan_in + fan_out))


def default_score_lambda(is_conv: bool, recipe: str) -> float:
    """Scores start as U(0, lambda * sigma): lambda 1 for conv, 0.1 for FC in the paper's text."""
    return 1.0 if is_conv or recipe == "authors" else 0.1
