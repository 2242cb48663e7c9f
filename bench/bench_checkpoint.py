"""What a trial checkpoint costs against the epochs it protects, on k_scan's trials.

Run `python bench/bench_checkpoint.py` (a few minutes; `--k 8 64`, `--epochs N`, `--dataset`).
Each K trains a k_scan trial (Lenet-300-100, Fashion-MNIST, cosine schedule, 1 thread) with a
checkpoint after every epoch but the last. A checkpoint is timed as a study trial pays for it:
the trainer gathers the state, `TrainingState.save` writes it into a temporary folder, and the
folder is copied once more (Tune persists a reported checkpoint by copying it into its storage).
Prints the checkpoint's size, its median time, the median epoch time, the cost share of one
checkpoint per epoch, and the `checkpoint_every` that keeps the cost under 2% of epoch time.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from slotsweep.config import TrialConfig
from slotsweep.train.checkpoint import STATE_FILE, TrainingState
from slotsweep.train.trainer import train_trial

BUDGET = 0.02


def measure(k: int, epochs: int, dataset: str) -> dict[str, float]:
    config = TrialConfig(
        arch="lenet_300_100",
        dataset=dataset,
        method="slot",
        k=k,
        epochs=epochs,
        schedule="cosine",
        num_threads=1,
    )
    costs, sizes = [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)

        def save(state: TrainingState) -> None:
            start = time.perf_counter()
            folder = Path(tempfile.mkdtemp(dir=root))
            state.save(folder)
            shutil.copytree(folder, root / f"persisted-{len(costs)}")
            costs.append(time.perf_counter() - start)
            sizes.append((folder / STATE_FILE).stat().st_size)
            shutil.rmtree(folder)

        result = train_trial(config, on_checkpoint=save, checkpoint_every=1)
    epoch = statistics.median(e.epoch_time_s for e in result.epochs)
    cost = statistics.median(costs)
    return {
        "k": k,
        "mb": sizes[0] / 2**20,
        "cost_s": cost,
        "epoch_s": epoch,
        "share": cost / epoch,
        "every": max(1, math.ceil(cost / (BUDGET * epoch))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="fashion_mnist")
    args = parser.parse_args()
    print("| K | checkpoint MB | checkpoint s | epoch s | share per epoch | every for < 2% |")
    print("|---|---|---|---|---|---|")
    for k in args.k:
        row = measure(k, args.epochs, args.dataset)
        print(
            f"| {k} | {row['mb']:.1f} | {row['cost_s']:.3f} | {row['epoch_s']:.2f} | "
            f"{100 * row['share']:.2f}% | {row['every']} |"
        )


if __name__ == "__main__":
    main()
