"""The candidate values of slot layers: a counter-based hash of (values seed, flat index).

value(i) = sigma * (2 u(i) - 1), u(i) = (h(i) >> 8) * 2^-24, where i is the flat index into the
values tensor (connection * K + k for `sharing="none"`, k for shared values) and h a 32-bit hash
of the 64-bit i keyed by 64 bits derived from the layer's values seed. Any value can be computed
on its own, so a fused layer stores none: it regenerates the values it needs, and the native
kernel (`fused_kernel.c`, `hashed_value`) computes the same bits while it updates the scores.

h is two rounds of prospector32 (github skeeto/hash-prospector: shifts 15, 12, 15, multipliers
0x2c1b3c6d and 0x297a2d39): round one on the low index word xor the low key word, round two on
that xor the high index word xor the high key word. Both multipliers are below 2^31, so a 32-bit
value times either stays below 2^63 and the hash is exact in torch's int64 arithmetic. Keys come
from sha256 (`derive_seed`): two keys with equal high words and a small difference d in the low
word would give the same values at indices i and i xor d, which random 63-bit keys never do.
The float result is computed as float32(2 (h >> 8) - 2^24) * float32(sigma * 2^-24), exactly
sigma * (2u - 1) rounded once, the same in torch and C.
"""

from __future__ import annotations

import torch

from slotsweep.seeding import derive_seed

MASK = 0xFFFFFFFF
MULTIPLIERS = (0x2C1B3C6D, 0x297A2D39)


def values_key(values_seed: int) -> int:
    """The 64-bit hash key (63 bits used) of a layer's values seed."""
    return derive_seed(values_seed, "values")


def value_scale(sigma: float) -> float:
    """float32(sigma) * 2^-24: the factor of the centred integer 2 (h >> 8) - 2^24."""
    return float(torch.tensor(sigma, dtype=torch.float32)) * 2.0**-24


def _mix(x: torch.Tensor) -> torch.Tensor:
    """One prospector32 round on 32-bit values held in int64, in place."""
    x.bitwise_xor_(x >> 15).mul_(MULTIPLIERS[0]).bitwise_and_(MASK)
    x.bitwise_xor_(x >> 12).mul_(MULTIPLIERS[1]).bitwise_and_(MASK)
    return x.bitwise_xor_(x >> 15)


def value_hash(index: torch.Tensor, key: int) -> torch.Tensor:
    """h(i) of non-negative int64 indices, as int64 tensors holding 32-bit values."""
    h = _mix(index.bitwise_and(MASK).bitwise_xor_(key & MASK))
    return _mix(h.bitwise_xor_(index >> 32).bitwise_xor_(key >> 32))


def slot_values(index: torch.Tensor, key: int, sigma: float) -> torch.Tensor:
    """The float32 candidate values at the flat `index` (int64, any shape, any device)."""
    centred = (value_hash(index, key) >> 8).mul_(2).sub_(1 << 24).to(torch.float32)
    return centred.mul_(value_scale(sigma))
