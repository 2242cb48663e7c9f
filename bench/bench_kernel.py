"""The native fused update alone, against the PyTorch reference and the memory it must move.

Run `python bench/bench_kernel.py [--cold] [--threads N]`. For layers of Lenet-300-100 (784x300)
and CONV-4 (128x128x3x3) at each K it prints milliseconds per update of `native.update` and of
`fused_update_reference` (momentum 0.9, weight decay 1e-4), and of a PyTorch in-place pass over
the same streams (read values, scores, momenta; write scores, momenta: `a.add_(c); b.add_(1)`),
which is about as fast as that memory can be moved. `--cold` evicts the caches before every call,
as forward and backward do in training when the state is larger than the cache.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from slotsweep.nn import native
from slotsweep.nn.fused import fused_update_reference
from slotsweep.nn.slot import SlotConv2d, SlotLinear

LAYERS = {"lenet 784x300": ("linear", 784, 300), "conv4 128x128x3x3": ("conv", 128, 128)}


def median_ms(run: Callable[[], object], repeats: int, evict: torch.Tensor | None) -> float:
    run()
    times = []
    for _ in range(repeats):
        if evict is not None:
            evict.add_(1.0)
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def make_layer(kind: str, fan_in: int, fan_out: int, k: int, sharing: str):
    if kind == "linear":
        layer = SlotLinear(fan_in, fan_out, k, sharing=sharing, fused=True)
    else:
        layer = SlotConv2d(fan_in, fan_out, 3, k, sharing=sharing, fused=True)
    layer.refresh_cached_weight()
    layer.cached_weight.grad = torch.randn(layer.cached_weight.shape) * 1e-3
    return layer


def row(name: str, k: int, sharing: str, repeats: int, evict: torch.Tensor | None) -> str:
    layer = make_layer(*LAYERS[name], k, sharing)
    buffer, reference_buffer = torch.zeros_like(layer.scores), torch.zeros_like(layer.scores)
    native_ms = median_ms(
        lambda: native.update(layer, buffer, 0.1, 0.9, 1e-4, False), repeats, evict
    )
    reference_ms = median_ms(
        lambda: fused_update_reference(layer, reference_buffer, 0.1, 0.9, 1e-4),
        max(3, repeats // 5),
        evict,
    )
    a, b = torch.rand_like(layer.scores), torch.rand_like(layer.scores)
    c = layer.values if sharing == "none" else torch.rand(()).expand_as(a)
    # Additions: repeated multiplications drift into denormals, which run many times slower.
    stream_ms = median_ms(lambda: (a.add_(c), b.add_(1.0)), repeats, evict)
    streams = 5 if sharing == "none" else 4
    gigabytes = streams * layer.scores.numel() * 4 / 1e9
    return (
        f"{name:18} {k:3} {sharing:7} {native_ms:8.3f} {reference_ms:9.3f} {stream_ms:8.3f} "
        f"{native_ms / stream_ms:10.2f} {gigabytes / native_ms * 1e3:7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cold", action="store_true", help="evict the caches before each call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not native.available():
        raise SystemExit(f"native kernel unavailable: {native.unavailable_reason()}")
    evict = torch.zeros(64 * 2**20) if args.cold else None  # 256 MB
    print(f"{args.threads} threads, {'cold' if args.cold else 'warm'} caches; ms per update")
    print(
        f"{'layer':18} {'K':>3} {'sharing':7} {'native':>8} {'reference':>9} {'stream':>8} "
        f"{'nat/stream':>10} {'GB/s':>7}"
    )
    for name in LAYERS:
        for k in (2, 4, 8, 16, 32, 64):
            for sharing in ("none", "layer"):
                print(row(name, k, sharing, args.repeats, evict), flush=True)


if __name__ == "__main__":
    main()
