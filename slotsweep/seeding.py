"""Every random stream of a trial, derived from the one trial seed (the only seeding scheme).

A stream is named by what it draws; each has one derivation here, and code that draws takes
its generator from these functions, never seeds one itself:
- layers' values, scores, signs and initial weights, PS sampling: `generator(seed, *keys)`, a
  sha256 of (seed, keys), so streams of different names are unrelated; dropout draws from
  torch's global generator, seeded by `seed_torch` from the same derivation;
- an epoch's batch order and augmentation: `epoch_generator(seed, epoch)`, numpy's
  SeedSequence of (seed, epoch), so nearby (seed, epoch) pairs give unrelated orders;
- the validation split and the synthetic data set: `data_generator(seed)`, torch seeded with the
  trial seed itself.
The last two derive differently from the first only because the recorded results (the README's
numbers, stored trials) were drawn so; a change to any derivation changes every accuracy.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that depends only on `seed` and `keys` (stable across processes and runs)."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded from `derive_seed(seed, *keys)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 64-bit seed for (seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's batch order and augmentation."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))


def data_generator(seed: int) -> torch.Generator:
    """The generator of the validation split and of the synthetic data set."""
    return torch.Generator().manual_seed(seed)


def seed_torch(seed: int) -> None:
    """Seeds torch's global generator, which dropout draws from, for this trial."""
    torch.manual_seed(derive_seed(seed, "torch"))
