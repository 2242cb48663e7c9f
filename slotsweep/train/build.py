"""What a trial is made of: its device, its data, its network (of any registered family, with
the fused update where it serves), and the accuracy of a network on a split."""

from __future__ import annotations

import torch
from torch import nn

from slotsweep.config import ResolvedConfig, TrialConfig
from slotsweep.data import BatchLoader, DataSplits, load_data
from slotsweep.models import create_model
from slotsweep.nn import LayerSpec, SlotMixin, native, triton_update
from slotsweep.train.result import TrialFailed

EVAL_BATCH = 1024


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrialFailed(f"device {name!r} requested but CUDA is not available")
    return device


def use_fused(config: TrialConfig, device: torch.device) -> bool:
    """Whether slot layers take the fused update: asked for, or 'auto' where a kernel serves
    (the native one on the CPU, the Triton one on CUDA)."""
    if config.method != "slot" or config.selection != "greedy" or config.impl == "reference":
        return False
    if config.impl == "fused":
        return True
    kernel = {"cpu": native, "cuda": triton_update}.get(device.type)
    return kernel is not None and kernel.available()


def trial_data(config: ResolvedConfig) -> DataSplits:
    """The trial's data: its splits (validation share, seed, subset) as it trains on them."""
    return load_data(
        config.dataset,
        config.data_root,
        seed=config.seed,
        val_fraction=config.val_fraction,
        train_subset=config.train_subset,
    )


def build_model(
    config: TrialConfig, data: DataSplits, method: str | None = None, fused: bool = False
) -> nn.Module:
    """The trial's network for `method` (default: the config's)."""
    spec = LayerSpec(
        method=method or config.method,
        k=config.k,
        selection=config.selection,
        sharing=config.sharing,
        score_lambda=config.score_lambda,
        score_lambda_conv=config.score_lambda_conv,
        recipe=config.recipe,
        keep_fraction=config.keep_fraction,
        seed=config.seed,
        fused=fused,
    )
    channels, size = data.train.images.shape[1], data.train.images.shape[2]
    return create_model(
        config.arch,
        spec,
        in_channels=channels,
        image_size=size,
        num_classes=data.num_classes,
        padding=config.padding,
        dropout=config.dropout,
    )


def evaluate(model: nn.Module, loader: BatchLoader) -> float:
    """Accuracy of `model` (eval mode: GS argmax, PS argmax, no dropout) on a loader."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum()  # on the device: no sync per batch
            total += y.numel()
    return correct.item() / max(total, 1)


def copy_selected_weights(source: nn.Module, target: nn.Module) -> None:
    """Finetuning start: every slot layer's selected weight into the matching dense layer."""
    slots = [m for m in source.modules() if isinstance(m, SlotMixin)]
    denses = [m for m in target.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for slot, dense in zip(slots, denses, strict=True):
            dense.weight.copy_(slot.selected_weight())
