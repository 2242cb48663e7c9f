"""Deterministic seeds derived from one trial seed, so every random draw is explicit."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that depends only on `seed` and `keys` (stable across processes and runs)."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded from `derive_seed(seed, *keys)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))
