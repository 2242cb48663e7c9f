"""Times the native fused update alone against PyTorch's reference and a memory-bound copy.

Run `python bench/bench_kernel.py [--threads N]`. For each layer shape and K it prints the
milliseconds of `native.update`, of `fused_update_reference`, and of `torch` copying as many bytes
as the kernel must move (reads values, scores, momentum; writes scores, momentum): the kernel
cannot beat that copy by much, so the ratio kernel/copy says how far it is from memory speed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from slotsweep.nn import native
from slotsweep.nn.fused import fused_update_reference
from slotsweep.nn.slot import SlotConv2d, SlotLinear

SHAPES = {"lenet 784x300": ("linear", 784, 300), "conv4 128x128x3x3": ("conv", 128, 128)}


def _median_ms(run, repeats: int) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _layer(kind: str, fan_in: int, fan_out: int, k: int, sharing: str):
    if kind == "linear":
        layer = SlotLinear(fan_in, fan_out, k, sharing=sharing, fused=True)
    else:
        layer = SlotConv2d(fan_in, fan_out, 3, k, sharing=sharing, fused=True)
    layer.refresh_cached_weight()
    layer.cached_weight.grad = torch.randn(layer.weight_shape)
    return layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    assert native.available(), "native kernel not available"
    print(f"{'layer':20} {'K':>3} {'sharing':7} {'native':>8} {'ref':>8} {'copy':>8} "
          f"{'nat/copy':>8} {'GB/s':>6}")
    for name, (kind, fan_in, fan_out) in SHAPES.items():
        for k in (2, 4, 8, 16, 32, 64):
            for sharing in ("none", "layer"):
                layer = _layer(kind, fan_in, fan_out, k, sharing)
                buffer = torch.zeros_like(layer.scores)
                native_ms = _median_ms(lambda: native.update(  # noqa: B023
                    layer, buffer, 0.1, 0.9, 1e-4, False), args.repeats)  # noqa: B023
                ref_buffer = buffer.clone()
                ref_ms = _median_ms(lambda: fused_update_reference(  # noqa: B023
                    layer, ref_buffer, 0.1, 0.9, 1e-4), max(5, args.repeats // 5))  # noqa: B023
                moved = layer.scores.numel() * (3 if sharing == "none" else 2)
                src, dst = torch.empty(moved), torch.empty(moved)
                copy_ms = _median_ms(lambda: dst.copy_(src), args.repeats)  # noqa: B023
                nbytes = 4 * (moved + 2 * layer.scores.numel())
                print(f"{name:20} {k:3} {sharing:7} {native_ms:8.3f} {ref_ms:8.3f} "
                      f"{copy_ms:8.3f} {native_ms / copy_ms:8.2f} "
                      f"{nbytes / native_ms / 1e6:6.1f}")


if __name__ == "__main__":
    main()
