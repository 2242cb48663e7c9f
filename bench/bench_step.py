"""Milliseconds per training step of slot machines against a dense network and a one-hot baseline.

Run `python bench/bench_step.py` (about 90 s; `--quick` for a smoke run of seconds,
`--rounds N` for steadier medians, `--user-loop` for that table alone). One step is forward,
backward and the SGD update (lr 0.1, momentum 0.9, weight decay 1e-4) of cross-entropy on a
fixed random batch, with 2 torch threads.
The variants of one network are timed round-robin in this process (every round times each once,
after warm-up steps; the median round counts) so that load from other processes hits them alike:
`dense` (weight training), `fused` (slot layers with `SlotSGD`'s fused update: the native
kernel, prebuilt at install or built at run time, where `slotsweep.nn.native.available()`),
`reference` (slot layers through autograd and torch SGD), and `one-hot`, the authors' design
(maxwell-aladago/slot-machines): the weight is `(one_hot(argmax scores) * values).sum(-1)` with
a straight-through one-hot, trained by torch SGD. Then a K sweep on Lenet, and the training
state (`memory_state_bytes`) per connection. Between them, a user's own loop: a plain torch Lenet
`slotify`-ed at K=8, on one thread, stepped by `SlotSGD` or by torch's SGD and Adam (the default
path: autograd fills `scores.grad`; "PyTorch" rows run it with `SLOTSWEEP_NATIVE=0`, without the
native selection and score gradient), against the dense step.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import resource
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slotsweep.models import create_model
from slotsweep.nn import LayerSpec, SlotMixin, native, slotify
from slotsweep.train.metrics import memory_state_bytes
from slotsweep.train.optim import build_optimizer

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4
NETWORKS = {"lenet": ("lenet_300_100", 1, 28, 128), "conv4": ("conv4", 3, 32, 32)}
VARIANTS = ("dense", "fused", "reference", "one-hot")
# (network, K) -> the ratios the fused update is meant to reach, printed beside the measured ones
HEADLINE = {
    ("lenet", 8): "/dense<=2.0 /1-hot<=0.5",
    ("lenet", 32): "/1-hot<=0.5",
    ("conv4", 8): "/dense<=1.3 /1-hot<=0.5",
}
SWEEP_K = (2, 4, 8, 16, 32, 64)


class OneHotArgmax(torch.autograd.Function):
    """The authors' greedy selection: forward the one-hot of the argmax, backward the identity."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - torch's signature
        return torch.zeros_like(scores).scatter_(-1, scores.argmax(-1, keepdim=True), 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return grad


def _one_hot_weight(layer: SlotMixin) -> torch.Tensor:
    return (OneHotArgmax.apply(layer.scores) * layer.values).sum(-1)


@contextlib.contextmanager
def native_kernel(enabled: bool) -> Iterator[None]:
    """`SLOTSWEEP_NATIVE=0` for the duration, when not `enabled`: the PyTorch path."""
    before = os.environ.get("SLOTSWEEP_NATIVE")
    if not enabled:
        os.environ["SLOTSWEEP_NATIVE"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SLOTSWEEP_NATIVE", None)
        else:
            os.environ["SLOTSWEEP_NATIVE"] = before


@dataclass
class Run:
    """One variant's network, optimiser and batch; `native=False` steps it with the native
    kernel off (the PyTorch selection and score gradient)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    native: bool = True

    def step(self) -> None:
        with native_kernel(self.native):
            self.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(self.x), self.y).backward()
            self.optimizer.step()


def build_model(network: str, variant: str, k: int, sharing: str = "none") -> nn.Module:
    """The network of `variant`; one-hot is the reference slot network with its weight swapped."""
    arch, channels, size, _ = NETWORKS[network]
    method = "dense" if variant == "dense" else "slot"
    spec = LayerSpec(method=method, k=k, sharing=sharing, fused=variant == "fused")
    model = create_model(arch, spec, in_channels=channels, image_size=size, dropout=0.0)
    if variant == "one-hot":
        for layer in model.modules():
            if isinstance(layer, SlotMixin):
                layer.effective_weight = functools.partial(_one_hot_weight, layer)
    return model


def build_run(network: str, variant: str, k: int, sharing: str = "none") -> Run:
    _, channels, size, batch = NETWORKS[network]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)
    model = build_model(network, variant, k, sharing)
    return Run(model, build_optimizer(model, LR, MOMENTUM, WEIGHT_DECAY), x, y)


def check_one_hot_forward(network: str, k: int) -> None:
    """The one-hot network must compute what the slot network computes."""
    slot, one_hot = build_run(network, "reference", k), build_run(network, "one-hot", k)
    with torch.no_grad():
        torch.testing.assert_close(one_hot.model(slot.x), slot.model(slot.x))


def minor_faults() -> int:
    """Page faults the process took so far that needed no disk (fresh pages of new memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_round_robin(
    runs: dict[str, Run], rounds: int, steps: int, warmup: int, faults: dict | None = None
) -> dict:
    """Median milliseconds per step of each run, the runs interleaved round by round; fills
    `faults`, if given, with each run's median minor page faults per step."""
    for run in runs.values():
        for _ in range(warmup):
            run.step()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    fault_samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            faulted, start = minor_faults(), time.perf_counter()
            for _ in range(steps):
                run.step()
            samples[name].append(1e3 * (time.perf_counter() - start) / steps)
            fault_samples[name].append((minor_faults() - faulted) / steps)
    if faults is not None:
        faults.update({name: statistics.median(f) for name, f in fault_samples.items()})
    return {name: statistics.median(times) for name, times in samples.items()}


def headline(args: argparse.Namespace) -> None:
    print(
        f"{'network':8} {'K':>3} "
        + " ".join(f"{v:>10}" for v in VARIANTS)
        + f" {'fused/dense':>11} {'fused/1-hot':>11} {'goal':>22}"
    )
    for (network, k), goal in HEADLINE.items():
        check_one_hot_forward(network, k)
        runs = {variant: build_run(network, variant, k) for variant in VARIANTS}
        ms = time_round_robin(runs, args.rounds, args.steps, args.warmup)
        print(
            f"{network:8} {k:3} "
            + " ".join(f"{ms[v]:10.2f}" for v in VARIANTS)
            + f" {ms['fused'] / ms['dense']:11.2f} {ms['fused'] / ms['one-hot']:11.2f}"
            + f" {goal:>22}",
            flush=True,
        )


def plain_lenet() -> nn.Module:
    """Lenet-300-100 as a user writes it: plain torch layers, with biases."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 300),
        nn.ReLU(),
        nn.Linear(300, 100),
        nn.ReLU(),
        nn.Linear(100, 10),
    )


def user_loop(args: argparse.Namespace) -> None:
    """A user's own loop on one thread: a plain Lenet, dense and `slotify`-ed at K=8, stepped
    by `SlotSGD` (the fused update, `fused=True`) or by any torch optimizer (autograd fills
    `scores.grad`: the default path)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _, _, _, batch = NETWORKS["lenet"]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)
    sgd = functools.partial(torch.optim.SGD, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    runs = {}
    dense = plain_lenet()
    runs["dense SGD"] = Run(dense, sgd(dense.parameters()), x, y)
    fused = slotify(plain_lenet(), k=8, fused=True)
    runs["slot SlotSGD"] = Run(fused, build_optimizer(fused, LR, MOMENTUM, WEIGHT_DECAY), x, y)
    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    for name, make, kernel in (
        ("SGD", sgd, True),
        ("SGD, PyTorch", sgd, False),
        ("Adam", adam, True),
    ):
        model = slotify(plain_lenet(), k=8)
        runs[f"slot {name}"] = Run(model, make(model.parameters()), x, y, native=kernel)
    faults: dict[str, float] = {}
    ms = time_round_robin(runs, args.rounds, args.steps, args.warmup, faults)
    torch.set_num_threads(threads)
    print("\nA user's loop: Lenet-300-100 slotify(k=8), batch 128, 1 thread (goal: slot SGD <= 3x)")
    print(f"{'model and optimizer':20} {'ms/step':>8} {'/dense':>7} {'faults/step':>11}")
    for name, value in ms.items():
        print(
            f"{name:20} {value:8.2f} {value / ms['dense SGD']:7.2f} {faults[name]:11.0f}",
            flush=True,
        )
    print(
        "faults/step: fresh pages the allocator took from the OS (about 1.4 us each here); "
        "thousands mean glibc\nreturned the step's freed 7.5 MB tensors to the OS (the "
        "allocator's setting, see docs/results.md)"
    )


def k_sweep(args: argparse.Namespace) -> None:
    variants = ("dense", "fused", "reference")
    print(
        f"\nLenet-300-100, batch 128: ms per step\n{'K':>3} "
        + " ".join(f"{v:>10}" for v in variants)
        + f" {'fused/dense':>11} {'ref/fused':>10}"
    )
    for k in SWEEP_K:
        runs = {variant: build_run("lenet", variant, k) for variant in variants}
        ms = time_round_robin(runs, args.rounds, args.steps, args.warmup)
        print(
            f"{k:3} "
            + " ".join(f"{ms[v]:10.2f}" for v in variants)
            + f" {ms['fused'] / ms['dense']:11.2f} {ms['reference'] / ms['fused']:10.2f}",
            flush=True,
        )


def connections(model: nn.Module) -> int:
    return sum(math.prod(m.weight_shape) for m in model.modules() if isinstance(m, SlotMixin))


def memory_table(k: int) -> None:
    print(f"\nLenet-300-100, K={k}: training state bytes per connection after one step")
    print(f"{'sharing':8} {'fused':>8} {'reference':>10}")
    for sharing in ("none", "layer", "global"):
        per = {}
        for variant in ("fused", "reference"):
            run = build_run("lenet", variant, k, sharing)
            run.step()
            per[variant] = memory_state_bytes(run.model, run.optimizer) / connections(run.model)
        print(f"{sharing:8} {per['fused']:8.1f} {per['reference']:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 steps: a smoke run")
    parser.add_argument("--user-loop", action="store_true", help="only the user's loop table")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 3, 3, 1
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, native kernel "
        f"{native.origin() or 'OFF (fused uses the PyTorch update)'}, "
        f"{args.rounds} rounds x {args.steps} steps\n"
    )
    if args.user_loop:
        user_loop(args)
        return
    headline(args)
    user_loop(args)
    k_sweep(args)
    memory_table(8)


if __name__ == "__main__":
    main()
