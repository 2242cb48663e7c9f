"""The device check: one command that shows what slotsweep's GPU step does, within a short lease.

    python bench/gpu_check.py            # the whole check (under 5 minutes on one H100)
    python bench/gpu_check.py --quick    # a one-minute subset

It needs only torch (2.11 or later), triton and numpy: no network, no install (it imports the
repository beside it), and none of Ray, MLflow, Optuna or pydantic, which GPU machines may lack.
On synthetic data of CIFAR-10's shape (3x32x32, 10 classes, batch 128) it prints:
1. the Triton update against `fused_update_reference`: both take the same dense gradients for
   the same steps; the check exits 1 when their selections differ (beyond exact near-ties);
2. ms per training step of dense, slot `fused-triton` and slot `reference` (autograd + torch
   SGD) for Lenet-300-100, CONV-6 and VGG-19 at K=8, their ratios and CUDA peak memory;
3. the fused step with TF32 on and off, and with channels-last convolutions on and off;
4. an epoch of CONV-6 and VGG-19 (slot, fused) on 50,000 images, the split and its augmentation
   on the device, host syncs counted (`torch.cuda.set_sync_debug_mode`: a few per epoch, none
   per batch);
5. trials per hour of Lenet trials packed 1, 2, 4 and 8 to the GPU: plain processes sharing it,
   each capped to its share of memory (what Ray's fractional GPUs do), started together once
   every one has imported torch and built its data (as Ray's reused workers have).
Without a GPU it says so and runs a small CPU version (the Triton kernel in its interpreter):
what the test suite runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

CUDA = torch.cuda.is_available()
if not CUDA:  # before triton is imported: the kernel runs in its interpreter on CPU tensors
    os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from slotsweep.data import BatchLoader, Split  # noqa: E402
from slotsweep.models import create_model  # noqa: E402
from slotsweep.nn import LayerSpec, SlotMixin, native, triton_update  # noqa: E402
from slotsweep.nn.fused import fused_layers, fused_update_reference  # noqa: E402
from slotsweep.train.device import apply_precision, cap_gpu_memory  # noqa: E402
from slotsweep.train.optim import build_optimizer, train_step  # noqa: E402

DEVICE = torch.device("cuda" if CUDA else "cpu")
ARCHS = {"lenet": "lenet_300_100", "conv6": "conv6", "vgg19": "vgg19"}
K, BATCH, LR, MOMENTUM, WEIGHT_DECAY = 8, 128, 0.1, 0.9, 1e-4
FORBIDDEN = ("ray", "mlflow", "optuna", "pydantic")
ROUNDS = 5 if CUDA else 3  # the CPU mode shows that the check runs; a few ms per round
NEAR_TIE = 1e-5  # relative score gap under which two candidates count as tied


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def build(arch: str, variant: str, seed: int = 0) -> nn.Module:
    """`dense`, `fused` (slot, the fused update: Triton on CUDA) or `reference` (slot, autograd)."""
    method = "dense" if variant == "dense" else "slot"
    spec = LayerSpec(method=method, k=K, seed=seed, fused=variant == "fused")
    model = create_model(ARCHS[arch], spec, in_channels=3, image_size=32, dropout=0.0)
    return model.to(DEVICE)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, 3, 32, 32, generator=generator)
    return x.to(DEVICE), torch.randint(0, 10, (BATCH,), generator=generator).to(DEVICE)


def agreement(arch: str, steps: int) -> dict:
    """Triton's update and the reference's from the same dense gradients, step after step."""
    kernel_model = build(arch, "fused", seed=1)
    reference = copy.deepcopy(kernel_model)
    pairs = list(zip(fused_layers(kernel_model), fused_layers(reference), strict=True))
    buffers: dict[int, list] = {i: [None, None] for i in range(len(pairs))}
    for step in range(steps):
        x, y = batch(step)
        for layer, _ in pairs:
            if layer.cached_weight is not None:
                layer.cached_weight.grad = None
        F.cross_entropy(kernel_model(x), y).backward()
        for i, (kernel, ref) in enumerate(pairs):
            if ref.cached_weight is None:
                ref.refresh_cached_weight()
            ref.cached_weight.grad = kernel.cached_weight.grad.clone()
            state = buffers[i]
            state[1] = fused_update_reference(ref, state[1], LR, MOMENTUM, WEIGHT_DECAY)
            first = state[0] is None
            if first:
                state[0] = torch.empty_like(kernel.scores)
            triton_update.update(kernel, state[0], LR, MOMENTUM, WEIGHT_DECAY, first_step=first)
    return {"arch": arch, "steps": steps, **disagreement(pairs)}


def disagreement(pairs: list[tuple[SlotMixin, SlotMixin]]) -> dict[str, float]:
    """How far the kernel's layers are from the reference's: the largest score difference,
    connections whose choice differs only between candidates the reference scores within
    `NEAR_TIE` of each other (rounding can order those either way), and the others."""
    worst, disagree, ties, connections = 0.0, 0, 0, 0
    for kernel, ref in pairs:
        worst = max(worst, (kernel.scores - ref.scores).abs().max().item())
        chosen, expected = kernel.selection_indices(), ref.selection_indices()
        differ = chosen != expected
        scores = ref.scores.detach()
        gap = scores.max(-1).values - scores.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        tied = differ & (gap <= NEAR_TIE * scores.abs().amax(-1).clamp(min=1e-30))
        ties += int(tied.sum())
        disagree += int((differ & ~tied).sum())
        connections += chosen.numel()
        # the weight the kernel wrote must be the one its scores select
        disagree += int(not torch.equal(kernel.cached_weight, kernel.selected_weight()))
    return {
        "connections": connections,
        "max_score_diff": worst,
        "near_ties": ties,
        "disagree": disagree,
    }


def time_steps(model: nn.Module, steps: int, warmup: int) -> tuple[float, int]:
    """(median ms per training step over `ROUNDS` rounds, CUDA peak bytes or 0)."""
    optimizer = build_optimizer(model, LR, MOMENTUM, WEIGHT_DECAY)
    x, y = batch()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    rounds = []
    for _ in range(ROUNDS):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rounds.append(1e3 * (time.perf_counter() - start) / steps)
    peak = torch.cuda.max_memory_allocated() if CUDA else 0
    return statistics.median(rounds), peak


def measure(arch: str, variant: str, steps: int, **switches: bool) -> tuple[float, int]:
    """ms per step and peak memory of one variant built afresh (`tf32`, `channels_last`)."""
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    apply_precision("tf32" if switches.get("tf32") else "fp32", DEVICE)
    model = build(arch, variant)
    if not switches.get("channels_last", True) and type(model[0]).__name__ == "ChannelsLast":
        model[0] = nn.Identity()
    try:
        return time_steps(model, steps, warmup=3 if CUDA else 1)
    finally:
        apply_precision("fp32", DEVICE)


def step_table(archs: list[str], steps: int) -> list[str]:
    rows = [
        f"{'network':<8} {'dense ms':>9} {'fused ms':>9} {'ref ms':>9} "
        f"{'fused/dense':>11} {'ref/dense':>9} {'peak MB dense/fused/ref':>24}"
    ]
    for arch in archs:
        measured = [measure(arch, v, steps) for v in ("dense", "fused", "reference")]
        times, peaks = zip(*measured, strict=True)
        dense, fused, ref = times
        megabytes = "/".join(f"{p / 2**20:.0f}" for p in peaks) if CUDA else "n/a (CPU)"
        rows.append(
            f"{arch:<8} {dense:9.2f} {fused:9.2f} {ref:9.2f} {fused / dense:11.2f} "
            f"{ref / dense:9.2f} {megabytes:>24}"
        )
    return rows


def switch_table(archs: list[str], steps: int) -> list[str]:
    """The fused slot step and the dense one with TF32 and channels-last on and off."""
    rows = [f"{'network':<8} {'variant':<7} {'fp32 ms':>8} {'tf32 ms':>8} {'NCHW ms':>8}"]
    for arch in archs:
        for variant in ("dense", "fused"):
            fp32 = measure(arch, variant, steps)[0]
            tf32 = measure(arch, variant, steps, tf32=True)[0]
            nchw = measure(arch, variant, steps, channels_last=False)[0]
            rows.append(f"{arch:<8} {variant:<7} {fp32:8.2f} {tf32:8.2f} {nchw:8.2f}")
    return rows


def synthetic_split(n: int, seed: int = 0) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return Split(images, torch.randint(0, 10, (n,), generator=generator))


def synthetic_loader(images: int, augment: bool) -> BatchLoader:
    """A shuffled loader of `synthetic_split(images)` on the device, as the checks train on."""
    return BatchLoader(
        synthetic_split(images),
        BATCH,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        shuffle=True,
        augment=augment,
        device=DEVICE,
    )


def train_epoch(model: nn.Module, loader: BatchLoader, optimizer, epoch: int) -> float:  # noqa: ANN001
    """An epoch of the trainer's step (`slotsweep.train.optim.train_step`): loss and accuracy
    summed on the device, read once at the end; returns the epoch's mean loss."""
    loader.set_epoch(epoch)
    model.train()
    loss_sum = torch.zeros((), device=DEVICE)
    correct = torch.zeros((), dtype=torch.int64, device=DEVICE)
    seen = 0
    for x, y in loader:
        train_step(model, optimizer, x, y, loss_sum, correct)
        seen += y.numel()
    return loss_sum.item() / seen


def epoch_row(arch: str, images: int) -> str:
    """One epoch of slot (fused) `arch` on `images` augmented images; the second of two epochs
    is timed and watched for host syncs."""
    loader = synthetic_loader(images, augment=True)
    model = build(arch, "fused")
    optimizer = build_optimizer(model, LR, MOMENTUM, WEIGHT_DECAY)
    train_epoch(model, loader, optimizer, 1)
    syncs = "not checked (CPU)"
    sync()
    start = time.perf_counter()
    if CUDA:  # torch warns at every synchronising call; the epoch's own (its order's copy to
        # the device, the loss read at the end) are a few, one per batch would be len(loader)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_epoch(model, loader, optimizer, 2)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        found = [w for w in caught if "synchroniz" in str(w.message).lower()]
        syncs = f"{len(found)} in {len(loader)} steps"
    else:
        train_epoch(model, loader, optimizer, 2)
    sync()
    seconds = time.perf_counter() - start
    tag = native.update_tag(model)
    return f"{arch:<8} {images:>7} {seconds:9.2f} {images / seconds:11.0f} {tag:<22} {syncs}"


def pack_worker(share: float, images: int, epochs: int) -> None:
    """One packed trial (a separate process): Lenet slot K=8 within `share` of the GPU."""
    torch.set_num_threads(1)
    capped = cap_gpu_memory(share)
    loader = synthetic_loader(images, augment=False)
    model = build("lenet", "fused")
    optimizer = build_optimizer(model, LR, MOMENTUM, WEIGHT_DECAY)
    x, y = next(iter(loader))  # one step first: the kernel compiled (or loaded), as in a reused
    F.cross_entropy(model(x), y).backward()  # worker; not counted as the trial's time
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync()
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    print("ready", flush=True)
    sys.stdin.readline()  # go
    start = time.time()  # wall clock: the parent compares the workers' times
    for epoch in range(1, epochs + 1):
        train_epoch(model, loader, optimizer, epoch)
    sync()
    peak = torch.cuda.max_memory_allocated() if CUDA else 0
    print(json.dumps({"start": start, "end": time.time(), "peak": peak, "capped": capped}))


def pack_row(count: int, images: int, epochs: int) -> tuple[str, float]:
    """`count` trials started together on one GPU; (table row, trials per hour)."""
    command = [sys.executable, __file__, "--pack-worker", str(1 / count), str(images), str(epochs)]
    workers = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    for worker in workers:
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("a packed trial failed before training (see its error above)")
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        if worker.returncode != 0:
            raise RuntimeError(f"a packed trial failed (exit {worker.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    # from the first trial's start to the last one's end: process exits are not trial time
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    per_hour = count / wall * 3600
    trial_s = statistics.median(r["end"] - r["start"] for r in results)
    peak = max(r["peak"] for r in results) / 2**20
    cap = f"{100 / count:.1f}%" if results[0]["capped"] else "none"
    row = f"{count:>6} {wall:8.1f} {trial_s:9.1f} {per_hour:10.0f} {peak:12.0f} {cap:>7}"
    return row, per_hour


def section(title: str, rows: list[str]) -> None:
    print(f"\n## {title}")
    print("\n".join(rows), flush=True)


def main(quick: bool) -> int:
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if CUDA else "none: no CUDA device found, CPU mode"
    print(f"device: {name}; torch {torch.__version__}; K={K}, batch {BATCH}, 3x32x32")
    small = quick or not CUDA
    steps = 2 if not CUDA else 3 if quick else 10
    checks = [agreement(a, steps) for a in (["lenet"] if small else list(ARCHS))]
    section(
        "Triton update vs reference (same gradients, same steps)", [json.dumps(c) for c in checks]
    )
    archs = ["lenet"] if not CUDA else (["lenet", "conv6"] if quick else list(ARCHS))
    section("ms per step (fp32)", step_table(archs, 5 if not CUDA or quick else 20))
    if CUDA:
        section(
            "TF32 and channels-last (ms per step)",
            switch_table(["conv6"] if quick else ["conv6", "vgg19"], 5 if quick else 20),
        )
    epoch_archs, images = (["conv6"], 10_000) if quick else (["conv6", "vgg19"], 50_000)
    if not CUDA:
        epoch_archs, images = ["lenet"], 512
    section(
        "epoch, slot fused, augmented on the device",
        [
            f"{'network':<8} {'images':>7} {'seconds':>9} {'images/s':>11} {'impl':<22} syncs",
            *(epoch_row(a, images) for a in epoch_archs),
        ],
    )
    counts = (1, 2) if small else (1, 2, 4, 8)
    pack_images, pack_epochs = (512, 1) if not CUDA else (20_000, 3 if quick else 5)
    rows = [pack_row(n, pack_images, pack_epochs) for n in counts]
    gain = rows[-1][1] / rows[0][1]
    where = "GPU" if CUDA else "CPU (no GPU: not a GPU measurement)"
    section(
        f"packed Lenet trials on one {where}: {pack_epochs} epoch(s) of {pack_images} images",
        [
            f"{'trials':>6} {'wall s':>8} {'trial s':>9} {'trials/h':>10} {'peak MB':>12} "
            f"{'cap':>7}",
            *(r for r, _ in rows),
            f"{counts[-1]} vs 1 per device: {gain:.2f}x",
        ],
    )
    loaded = [m for m in FORBIDDEN if sys.modules.get(m) is not None]  # None: blocked
    print(f"\nimported Ray/MLflow/Optuna/pydantic: {loaded or 'none'}")
    failed = sum(c["disagree"] for c in checks)
    verdict = "FAILED: Triton and reference selections differ" if failed else "agreement: ok"
    print(f"{verdict}; {time.perf_counter() - started:.0f} s")
    return 1 if failed or loaded else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute subset")
    parser.add_argument("--pack-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pack_worker:
        share, images, epochs = args.pack_worker
        pack_worker(float(share), int(images), int(epochs))
    else:
        sys.exit(main(args.quick))
