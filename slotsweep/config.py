"""The typed settings of one trial, filled by `slotsweep train` flags and a study's trial keys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["slot", "dense", "edge_popup"]
Arch = Literal["lenet_300_100", "conv2", "conv4", "conv6", "vgg19"]
Dataset = Literal["mnist", "fashion_mnist", "cifar10", "synthetic"]
Selection = Literal["greedy", "probabilistic"]
Sharing = Literal["none", "layer", "global"]
Recipe = Literal["paper", "authors"]
Schedule = Literal["warm_restarts", "cosine", "constant"]
Padding = Literal["authors", "same"]
Impl = Literal["auto", "reference", "fused"]

SLOT_ONLY_KEYS = ("k", "selection", "sharing", "score_lambda")


def unused_keys(method: str) -> set[str]:
    """Settings a trial of `method` carries but does not use (a dense baseline's K, a slot
    machine's keep_fraction): not names of that trial in views and reports."""
    unused = set() if method == "slot" else {*SLOT_ONLY_KEYS, "finetune_epochs"}
    return unused | (set() if method == "edge_popup" else {"keep_fraction"})


class TrialConfig(BaseModel):
    """Every setting of one trial; `None` means 'the recipe's default for this method'."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arch: Arch = Field("lenet_300_100", description="lenet_300_100 | conv2 | conv4 | conv6 | vgg19")
    dataset: Dataset = Field(
        "fashion_mnist", description="mnist | fashion_mnist | cifar10 | synthetic")
    data_root: str | None = Field(
        None, description="data folder, searched before $SLOTSWEEP_DATA and /usr/share/datasets")
    method: Method = Field(
        "slot", description="slot | dense (weight-trained baseline) | edge_popup")
    k: int = Field(8, ge=1, le=1024, description="candidate values per connection (slot)")
    selection: Selection = Field("greedy", description="greedy (GS) | probabilistic (PS)")
    sharing: Sharing = Field(
        "none", description="none | layer | global: how the random values are shared")
    score_lambda: float | None = Field(
        None, gt=0, description="scores start U(0, lambda*sigma); default 1 conv, 0.1 FC (paper)")
    recipe: Recipe = Field(
        "paper", description="paper | authors: initialisation and learning-rate defaults")
    lr: float | None = Field(
        None, gt=0, description="learning rate; default: the recipe's for method, selection, K")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(
        1e-4, ge=0, description="L2 on scores (slot, edge-popup) or weights (dense)")
    schedule: Schedule = Field(
        "warm_restarts", description="warm_restarts (SGDR: 25, 75, ...) | cosine | constant")
    restart_period: int = Field(25, ge=1, description="first SGDR period in epochs (then doubling)")
    epochs: int = Field(3, ge=1, description="training epochs")
    batch_size: int = Field(128, ge=1, description="examples per step")
    seed: int = Field(0, ge=0, description="seed of every random draw of the trial")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    train_subset: int | None = Field(
        None, ge=1, description="first N training examples only, for quick runs")
    val_fraction: float | None = Field(
        None, gt=0, lt=1, description="validation share; default 0.15 (28x28), 0.1 (CIFAR-10)")
    padding: Padding = Field(
        "authors", description="authors (unpadded CONV-2/4, first 4 of CONV-6) | same")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="dropout before two FC layers; default 0.5 CONV-x, else 0")
    keep_fraction: float = Field(
        0.5, gt=0, le=1, description="edge-popup: fraction of each layer's connections kept")
    finetune_epochs: int = Field(
        0, ge=0, description="slot: then weight-train the selected network this many epochs")
    impl: Impl = Field("auto", description="auto | reference | fused: slot update implementation")
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads (launch: the trial's CPU share)")
    fail_on_nan: bool = Field(True, description="a NaN training loss fails the trial")

    @model_validator(mode="after")
    def _check_combinations(self) -> TrialConfig:
        if self.method != "slot" and self.finetune_epochs:
            raise ValueError("finetune_epochs applies to method 'slot' only")
        return self

    def resolved_lr(self) -> float:
        """The learning rate this trial trains with (explicit, else the recipe's default)."""
        if self.lr is not None:
            return self.lr
        return default_lr(self.method, self.selection, self.k, self.recipe)

    def resolved_lr_for(self, method: str) -> float:
        """The recipe's default learning rate of another method (finetuning's dense phase)."""
        return default_lr(method, self.selection, self.k, self.recipe)

    def applicable_params(self) -> dict[str, object]:
        """The contract params of this trial, slot-only keys dropped for other methods."""
        keys = ["method", "arch", "dataset", "k", "selection", "sharing", "score_lambda", "lr",
                "momentum", "weight_decay", "batch_size", "epochs", "seed"]
        values = self.model_dump()
        values["lr"] = self.resolved_lr()
        return {key: values[key] for key in keys
                if self.method == "slot" or key not in SLOT_ONLY_KEYS}


def default_lr(method: str, selection: str, k: int, recipe: str) -> float:
    """Learning-rate defaults of ../shared/paper.md, per method, selection, K and recipe."""
    if method == "dense":
        return 0.01
    if method == "edge_popup":
        return 0.1
    if selection == "probabilistic":
        return 25.0 if recipe == "paper" else 50.0
    small_k = k <= 8
    if recipe == "paper":
        return 0.2 if small_k else 0.1
    return 0.1 if small_k else 0.01
