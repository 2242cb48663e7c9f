"""The typed settings of one trial, filled by `slotsweep train` flags and a study's trial keys.

`TrialConfig`'s fields are the registry of trial keys: their type, default and description feed
the `train` flags, the MLflow params and the README's table; `json_schema_extra` gives a key's
role (`runtime`: left out of a trial's identity) and whether it applies to slot machines only.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slotsweep import registry

Method = registry.FAMILIES.field_type()
Arch = registry.ARCHS.field_type()
Dataset = registry.DATASETS.field_type()
Selection = registry.SELECTIONS.field_type()
Sharing = registry.SHARINGS.field_type()
Recipe = registry.RECIPES.field_type()
Schedule = registry.SCHEDULES.field_type()
Padding = registry.PADDINGS.field_type()
Impl = registry.IMPLS.field_type()

RUNTIME: Any = {"role": "runtime"}  # where or how fast a trial runs: not part of its identity
SLOT_ONLY: Any = {"slot_only": True}
UNSET_PARAM = "auto"  # how MLflow params show a setting left to its default (None)
NOT_APPLICABLE = "n/a"  # how MLflow params show a slot-only setting of another method


def unused_keys(method: str) -> set[str]:
    """Settings a trial of `method` carries but does not use (a dense baseline's K, a slot
    machine's keep_fraction): not names of that trial in views and reports."""
    unused = set() if method == "slot" else {*SLOT_ONLY_KEYS, "finetune_epochs"}
    return unused | (set() if method == "edge_popup" else {"keep_fraction"})


class TrialConfig(BaseModel):
    """Every setting of one trial; `None` means 'the default for this trial' (`resolved()`)."""

    # inf and nan are refused: a learning rate or lambda of .inf would train on garbage
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    arch: Arch = Field("lenet_300_100", description="architecture: `lenet_300_100`, `conv2`, "
                       "`conv4`, `conv6`, `vgg19` (the paper's weight counts, tested)")
    dataset: Dataset = Field("fashion_mnist", description="`mnist`, `fashion_mnist`, `cifar10`, "
                             "`synthetic` (made from the seed, for tests)")
    data_root: str | None = Field(
        None, json_schema_extra=RUNTIME,
        description="searched first, then `$SLOTSWEEP_DATA`, then `/usr/share/datasets/NAME`, "
                    "then a download where a network exists")
    method: Method = Field("slot", description="`slot`, `dense` (weight-trained baseline), "
                           "`edge_popup`")
    k: int = Field(8, ge=1, le=1024, json_schema_extra=SLOT_ONLY,
                   description="candidate values per connection")
    selection: Selection = Field(
        "greedy", json_schema_extra=SLOT_ONLY,
        description="`greedy` (GS) or `probabilistic` (PS: sampled from softmax each training "
                    "pass; argmax at evaluation)")
    sharing: Sharing = Field(
        "none", json_schema_extra=SLOT_ONLY,
        description="`none` (K values per connection), `layer` (K per layer), `global` (one set "
                    "of K unit values for the network, scaled by each layer's sigma)")
    score_lambda: float | None = Field(
        None, gt=0, json_schema_extra=SLOT_ONLY,
        description="scores start U(0, lambda*sigma); lambda of FC layers (and of convs unless "
                    "`score_lambda_conv` is given); default: the recipe's (paper 0.1, authors 1)")
    score_lambda_conv: float | None = Field(
        None, gt=0, json_schema_extra=SLOT_ONLY,
        description="lambda of conv layers; default: `score_lambda` when given, else the "
                    "recipe's (1)")
    recipe: Recipe = Field(
        "paper", description="`paper` or `authors`: sigma = sqrt(2/(fan_in+fan_out)) or "
                             "sqrt(6/...), lambda and lr defaults")
    lr: float | None = Field(
        None, gt=0, description="learning rate; default: paper GS 0.2 (K <= 8) else 0.1, PS 25; "
                                "authors GS 0.1 / 0.01, PS 50; dense 0.01; edge-popup 0.1")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(
        1e-4, ge=0, description="SGD L2 on scores (slot, edge-popup) or weights (dense)")
    schedule: Schedule = Field(
        "warm_restarts", description="`warm_restarts` (SGDR, periods doubling from "
                                     "`restart_period`: restarts at 25, 75, ...), `cosine`, "
                                     "`constant`")
    restart_period: int = Field(25, ge=1, description="first SGDR period in epochs")
    epochs: int = Field(3, ge=1, description="training epochs")
    batch_size: int = Field(128, ge=1, description="examples per step")
    seed: int = Field(0, ge=0, description="seed of every random draw of the trial")
    device: str = Field("auto", json_schema_extra=RUNTIME,
                        description="`auto` (CUDA when present, else CPU), `cpu`, `cuda`, `cuda:N`")
    train_subset: int | None = Field(
        None, ge=1, description="first N training examples only (quick runs)")
    val_fraction: float | None = Field(
        None, gt=0, lt=1, description="validation share of the training set; default: the data "
        "set's, 0.15 (28x28 sets), 0.1 (CIFAR-10); model selection on validation accuracy, test "
        "accuracy of the selected epoch")
    padding: Padding = Field(
        "authors", description="`authors` (unpadded CONV-2/4 and first four convs of CONV-6) or "
                               "`same`; one setting for every method")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="dropout before the first two FC layers; default: the "
                                      "arch's, 0.5 CONV-x, else 0")
    keep_fraction: float = Field(
        0.5, gt=0, le=1, description="edge-popup: share of each layer's connections kept")
    finetune_epochs: int = Field(
        0, ge=0, description="slot: then weight-train the selected network (dense, its lr) this "
                             "many epochs")
    impl: Impl = Field(
        "auto", description="slot update: `auto` (fused where the native kernel serves), `fused` "
        "(one-pass update), `reference` (autograd + torch SGD); the run's tag `slotsweep.impl` "
        "says which ran: `fused-native-prebuilt`, `fused-runtime-build`, `fused-pytorch`, "
        "`reference`")
    num_threads: int | None = Field(
        None, ge=1, json_schema_extra=RUNTIME,
        description="torch CPU threads (launch: the trial's CPU share)")
    fail_on_nan: bool = Field(True, description="a NaN training loss fails the trial")

    @model_validator(mode="after")
    def _check_combinations(self) -> TrialConfig:
        if self.method != "slot" and self.finetune_epochs:
            raise ValueError("finetune_epochs applies to method 'slot' only")
        return self

    def resolved(self) -> TrialConfig:
        """This config with every default made explicit: the values the trial trains with.

        Resolving twice changes nothing, and trials that differ only in a default spelled out
        are the same trial (one `trial_key`)."""
        from slotsweep.data.catalog import get_spec
        from slotsweep.models import arch_spec

        recipe = registry.RECIPES.get(self.recipe)
        fc = self.score_lambda if self.score_lambda is not None else recipe.score_lambda_fc
        conv = self.score_lambda_conv if self.score_lambda_conv is not None else (
            self.score_lambda if self.score_lambda is not None else recipe.score_lambda_conv)
        dropout = arch_spec(self.arch).default_dropout if self.dropout is None else self.dropout
        val_fraction = (get_spec(self.dataset).val_fraction if self.val_fraction is None
                        else self.val_fraction)
        return self.model_copy(update={
            "score_lambda": fc, "score_lambda_conv": conv, "lr": self.resolved_lr(),
            "dropout": dropout, "val_fraction": val_fraction})

    def resolved_lr(self) -> float:
        """The learning rate this trial trains with (explicit, else the recipe's default)."""
        if self.lr is not None:
            return self.lr
        return default_lr(self.method, self.selection, self.k, self.recipe)

    def resolved_lr_for(self, method: str) -> float:
        """The recipe's default learning rate of another method (finetuning's dense phase)."""
        return default_lr(method, self.selection, self.k, self.recipe)

    def applicable_params(self) -> dict[str, object]:
        """The resolved settings that apply to this trial's method (slot-only keys dropped for
        the others): its MLflow params."""
        values = self.resolved().model_dump()
        slot_only = registry.slot_only_keys()
        return {key: value for key, value in values.items()
                if self.method == "slot" or key not in slot_only}

    @classmethod
    def from_params(cls, params: dict[str, str]) -> TrialConfig:
        """The config behind a run's MLflow params (strings; `auto` for an unset setting)."""
        fields, slot_only = cls.model_fields, registry.slot_only_keys()
        # another method's params carry placeholders for the slot-only keys (k = 0, `n/a`)
        other = params.get("method", "slot") != "slot"
        values = {key: None if value == UNSET_PARAM and fields[key].default is None else value
                  for key, value in params.items()
                  if key in fields and not (other and key in slot_only)}
        return cls.model_validate(values)


SLOT_ONLY_KEYS = registry.slot_only_keys()


def default_lr(method: str, selection: str, k: int, recipe: str) -> float:
    """The default learning rate: the family's (weight-trained, edge-popup), else the recipe's
    score learning rate for this selection and K."""
    from slotsweep.nn.family import family_class

    family_lr = family_class(method).default_lr
    if family_lr is not None:
        return family_lr
    return registry.RECIPES.get(recipe).slot_lr(selection, k)

