"""The training data path: time per batch fetch against the Lenet step it feeds.

Run `python bench/bench_data.py` (about 15 s; `--pair` runs two copies at once, as k_scan's two
concurrent 1-CPU trials do, `--rounds N` for steadier medians). With 1 torch thread, each round
trains one Fashion-MNIST epoch of dense Lenet-300-100 (batch 128) per variant, interleaved, and
times the batch fetches apart from the steps:
`loader` is slotsweep's BatchLoader (the split normalised once into huge pages, each epoch's
labels gathered at once, one gather per batch); `plain` is the same gather from ordinary
(4 KB-page) memory with the labels gathered per batch, the loader's previous design.
Prints microseconds per fetch and the fetches' share of the epoch, medians over rounds. The epoch
here is training steps only; the trainer's `data_time_fraction` also counts the validation pass,
so it is lower.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from slotsweep.data import BatchLoader, load_data
from slotsweep.models import create_model
from slotsweep.nn import LayerSpec
from slotsweep.train.optim import build_optimizer

BATCH = 128


def plain_batches(
    images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for index in order.split(BATCH):
        yield images.index_select(0, index), labels.index_select(0, index)


def timed_epoch(
    batches: Iterable, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[float, float, int]:
    """(fetch seconds, epoch seconds, batches) of one training epoch."""
    fetch, count, start, iterator = 0.0, 0, time.perf_counter(), iter(batches)
    while True:
        begin = time.perf_counter()
        batch = next(iterator, None)
        fetch += time.perf_counter() - begin
        if batch is None:
            return fetch, time.perf_counter() - start, count
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch[0]), batch[1]).backward()
        optimizer.step()
        count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs per variant (median)")
    parser.add_argument("--pair", action="store_true", help="run two copies side by side")
    args = parser.parse_args()
    if args.pair:
        command = [sys.executable, __file__, "--rounds", str(args.rounds)]
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for number, run in enumerate(runs, 1):
            print(f"copy {number} of 2\n{run.communicate()[0]}")
        return
    torch.set_num_threads(1)
    data = load_data("fashion_mnist", None, seed=0)
    loader = BatchLoader(data.train, BATCH, mean=data.mean, std=data.std, shuffle=True)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    plain_images = (data.train.images / 255 - mean) / std
    model = create_model("lenet_300_100", LayerSpec(method="dense"))
    optimizer = build_optimizer(model, 0.01, 0.9, 0.0)
    samples: dict[str, list[tuple[float, float, int]]] = {"loader": [], "plain": []}
    for epoch in range(args.rounds + 1):
        loader.set_epoch(epoch)
        order = torch.randperm(len(data.train))
        epochs = {"loader": loader, "plain": plain_batches(plain_images, data.train.labels, order)}
        for name, batches in epochs.items():
            result = timed_epoch(batches, model, optimizer)
            if epoch:  # the first round warms up
                samples[name].append(result)
    print(f"{'variant':8} {'us/fetch':>9} {'fetch share %':>14}")
    for name, rows in samples.items():
        per_fetch = statistics.median(1e6 * fetch / count for fetch, _, count in rows)
        share = statistics.median(100 * fetch / total for fetch, total, _ in rows)
        print(f"{name:8} {per_fetch:9.1f} {share:14.2f}")


if __name__ == "__main__":
    main()
