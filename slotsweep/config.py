"""The typed settings of one trial, filled by `slotsweep train` flags and a study's trial keys.

`TrialConfig`'s fields are the registry of trial keys: their type, default and description feed
the `train` flags, the MLflow params and the docs' table. Each field's `json_schema_extra` says
its role (`runtime`: left out of a trial's identity) and where it applies (`applies`: the
values of other keys under which it takes effect), declared once here and read by pre-flight,
the MLflow params, the live view and the report. `resolved()` makes every default explicit
once; a `ResolvedConfig` is what trials train with, log and hash (`trial_key`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slotsweep import registry

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

Method = registry.FAMILIES.field_type()
Arch = registry.ARCHS.field_type()
Dataset = registry.DATASETS.field_type()
Selection = registry.SELECTIONS.field_type()
Sharing = registry.SHARINGS.field_type()
Recipe = registry.RECIPES.field_type()
Schedule = registry.SCHEDULES.field_type()
Padding = registry.PADDINGS.field_type()
Impl = registry.IMPLS.field_type()
Precision = registry.PRECISIONS.field_type()

RUNTIME: Any = {"role": "runtime"}  # where or how fast a trial runs: not part of its identity
UNSET_PARAM = "auto"  # how MLflow params show a setting left to its default (None)
NOT_APPLICABLE = "n/a"  # how MLflow params show a slot-only setting of another method
CONV_X_ARCHS = ("conv2", "conv4", "conv6")  # CONV-x's dropout and the authors' padding
# identity keys added after trials were stored: left out of `trial_key` at these defaults, so a
# stored trial keeps its key (and a resumed study finds its runs)
LATER_KEYS = {"precision": "fp32"}


def applies(placeholder: str | None = None, **conditions: tuple[str, ...]) -> Any:
    """Field metadata: the key takes effect only where each named key holds one of its values
    (`applies(method=("slot",))`). A `placeholder` is what a run of another method shows for
    the key in its MLflow params (the slot machine's own settings: K and its values' selection,
    sharing and scale), so that MLflow's plots keep every run on a comparable axis."""
    extra: dict[str, Any] = {"applies": conditions}
    return extra if placeholder is None else {**extra, "placeholder": placeholder}


SLOT_ONLY: Any = applies(NOT_APPLICABLE, method=("slot",))


class TrialConfig(BaseModel):
    """Every setting of one trial; `None` means 'the default for this trial' (`resolved()`)."""

    # inf and nan are refused: a learning rate or lambda of .inf would train on garbage
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    arch: Arch = Field(
        "lenet_300_100",
        description="architecture: `lenet_300_100`, `conv2`, "
        "`conv4`, `conv6`, `vgg19` (the paper's weight counts, tested), or `torchvision/NAME`: "
        "any torchvision classification model, untrained, built for the data set's classes, "
        "channels and image size, every linear and conv layer of the trial's method",
    )
    dataset: Dataset = Field(
        "fashion_mnist",
        description="`mnist`, `fashion_mnist`, `cifar10`, "
        "`synthetic` (made from the seed, for tests)",
    )
    data_root: str | None = Field(
        None,
        json_schema_extra=RUNTIME,
        description="searched first, then `$SLOTSWEEP_DATA`, then `/usr/share/datasets/NAME`, "
        "then a download where a network exists",
    )
    method: Method = Field(
        "slot", description="`slot`, `dense` (weight-trained baseline), `edge_popup`"
    )
    k: int = Field(
        8,
        ge=1,
        le=1024,
        # K = 0 (no candidate values) keeps MLflow's K axis numeric for the other methods
        json_schema_extra=applies("0", method=("slot",)),
        description="candidate values per connection",
    )
    selection: Selection = Field(
        "greedy",
        json_schema_extra=SLOT_ONLY,
        description="`greedy` (GS) or `probabilistic` (PS: sampled from softmax each training "
        "pass; argmax at evaluation)",
    )
    sharing: Sharing = Field(
        "none",
        json_schema_extra=SLOT_ONLY,
        description="`none` (K values per connection), `layer` (K per layer), `global` (one set "
        "of K unit values for the network, scaled by each layer's sigma)",
    )
    score_lambda: float | None = Field(
        None,
        gt=0,
        json_schema_extra=SLOT_ONLY,
        description="scores start U(0, lambda*sigma); lambda of FC layers (and of convs unless "
        "`score_lambda_conv` is given); default: the recipe's (paper 0.1, authors 1)",
    )
    score_lambda_conv: float | None = Field(
        None,
        gt=0,
        json_schema_extra=SLOT_ONLY,
        description="lambda of conv layers; default: `score_lambda` when given, else the "
        "recipe's (1)",
    )
    recipe: Recipe = Field(
        "paper",
        json_schema_extra=applies(method=("slot",)),
        description="`paper` or `authors`: sigma = sqrt(2/(fan_in+fan_out)) or "
        "sqrt(6/...), lambda and lr defaults",
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="learning rate; default: paper GS 0.2 (K <= 8) else 0.1, PS 25; "
        "authors GS 0.1 / 0.01, PS 50; dense 0.01; edge-popup 0.1",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(
        1e-4, ge=0, description="SGD L2 on scores (slot, edge-popup) or weights (dense)"
    )
    schedule: Schedule = Field(
        "warm_restarts",
        description="`warm_restarts` (SGDR, periods doubling from "
        "`restart_period`: restarts at 25, 75, ...), `cosine`, "
        "`constant`",
    )
    restart_period: int = Field(
        25,
        ge=1,
        json_schema_extra=applies(schedule=("warm_restarts",)),
        description="first SGDR period in epochs",
    )
    epochs: int = Field(3, ge=1, description="training epochs")
    batch_size: int = Field(128, ge=1, description="examples per step")
    seed: int = Field(0, ge=0, description="seed of every random draw of the trial")
    device: str = Field(
        "auto",
        json_schema_extra=RUNTIME,
        description="`auto` (CUDA when present, else CPU), `cpu`, `cuda`, `cuda:N`",
    )
    train_subset: int | None = Field(
        None, ge=1, description="first N training examples only (quick runs)"
    )
    val_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="validation share of the training set; default: the data "
        "set's, 0.15 (28x28 sets), 0.1 (CIFAR-10); model selection on validation accuracy, test "
        "accuracy of the selected epoch",
    )
    padding: Padding = Field(
        "authors",
        json_schema_extra=applies(arch=CONV_X_ARCHS),
        description="`authors` (unpadded CONV-2/4 and first four convs of CONV-6) or "
        "`same`; one setting for every method",
    )
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        json_schema_extra=applies(arch=CONV_X_ARCHS),
        description="dropout before the first two FC layers; default: the "
        "arch's, 0.5 CONV-x, else 0",
    )
    keep_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        json_schema_extra=applies(method=("edge_popup",)),
        description="edge-popup: share of each layer's connections kept",
    )
    finetune_epochs: int = Field(
        0,
        ge=0,
        json_schema_extra=applies(method=("slot",)),
        description="slot: then weight-train the selected network (dense, its lr) this many epochs",
    )
    impl: Impl = Field(
        "auto",
        json_schema_extra=applies(method=("slot",)),
        description="slot update: `auto` (fused where a kernel serves: native on the CPU, "
        "Triton on CUDA), `fused` (one-pass update), `reference` (autograd + torch SGD); the "
        "run's tag `slotsweep.impl` says which ran: `fused-triton`, `fused-native-prebuilt`, "
        "`fused-runtime-build`, `fused-pytorch`, `reference`",
    )
    precision: Precision = Field(
        "fp32",
        description="`fp32` (float32 matmuls and convolutions everywhere) or `tf32` (TF32 "
        "tensor cores for them on CUDA: faster, about 3 decimal digits; no effect on the CPU)",
    )
    num_threads: int | None = Field(
        None,
        ge=1,
        json_schema_extra=RUNTIME,
        description="torch CPU threads (launch: the trial's CPU share)",
    )
    fail_on_nan: bool = Field(True, description="a NaN training loss fails the trial")

    @model_validator(mode="after")
    def _check_combinations(self) -> TrialConfig:
        # a second phase asked of a method that has none is an error, not a setting ignored
        if self.finetune_epochs and inapplicable(self, "finetune_epochs"):
            raise ValueError("finetune_epochs applies to method 'slot' only")
        return self

    def resolved(self) -> ResolvedConfig:
        """This config with every default made explicit: the values the trial trains with.

        Resolving twice changes nothing, and trials that differ only in a default spelled out
        are the same trial (one `trial_key`). The defaults are read from the registries (the
        recipe, the arch, the data set, the family), so a late registration is seen."""
        recipe = registry.RECIPES.get(self.recipe)
        fc = self.score_lambda if self.score_lambda is not None else recipe.score_lambda_fc
        conv = (
            self.score_lambda_conv
            if self.score_lambda_conv is not None
            else (self.score_lambda if self.score_lambda is not None else recipe.score_lambda_conv)
        )
        dropout = (
            registry.ARCHS.get(self.arch).default_dropout if self.dropout is None else self.dropout
        )
        val_fraction = (
            registry.DATASETS.get(self.dataset).val_fraction
            if self.val_fraction is None
            else self.val_fraction
        )
        lr = (
            self.lr
            if self.lr is not None
            else default_lr(self.method, self.selection, self.k, self.recipe)
        )
        return ResolvedConfig.model_validate(
            {
                **self.model_dump(),
                "score_lambda": fc,
                "score_lambda_conv": conv,
                "lr": lr,
                "dropout": dropout,
                "val_fraction": val_fraction,
            }
        )

    @classmethod
    def from_params(cls, params: dict[str, str]) -> ResolvedConfig:
        """The resolved config behind a run's MLflow params (strings; `auto` for an unset
        setting; the placeholders of another method's run, K = 0 and `n/a`, left out)."""
        fields, shown = cls.model_fields, param_placeholders(params.get("method", "slot"))
        values = {
            key: None if value == UNSET_PARAM and fields[key].default is None else value
            for key, value in params.items()
            if key in fields and key not in shown
        }
        return cls.model_validate(values).resolved()


class ResolvedConfig(TrialConfig):
    """A trial config whose defaults are explicit (`TrialConfig.resolved()`): what a trial trains
    with, logs as params and hashes into its `trial_key`. Downstream code takes this type and
    trusts it rather than resolving again."""

    # the settings `resolved()` fills in, no longer optional; their bounds, role and where they
    # apply stay declared once, on TrialConfig's fields (what `trial_keys()` reads)
    score_lambda: float
    score_lambda_conv: float
    lr: float
    dropout: float
    val_fraction: float

    def resolved(self) -> ResolvedConfig:
        return self


def default_lr(method: str, selection: str, k: int, recipe: str = "paper") -> float:
    """The default learning rate: the family's (weight-trained, edge-popup), else the recipe's
    score learning rate for this selection and K."""
    family_lr = registry.FAMILIES.get(method).default_lr
    if family_lr is not None:
        return family_lr
    return registry.RECIPES.get(recipe).slot_lr(selection, k)


# --- trial keys: the fields of TrialConfig, with their role and where they apply ---

Role = Literal["identity", "runtime"]  # runtime: where or how fast a trial runs, not its result


@dataclass(frozen=True)
class TrialKey:
    """One trial key: `identity` keys make a trial's `trial_key`; `applies` names the values of
    other keys under which it takes effect (empty: always); `placeholder`: its MLflow param in a
    run of another method."""

    name: str
    role: Role
    applies: dict[str, tuple[str, ...]]
    default: Any
    description: str
    placeholder: str | None = None


def _trial_key(name: str, field: FieldInfo) -> TrialKey:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    conditions = {key: tuple(values) for key, values in extra.get("applies", {}).items()}
    role, placeholder = extra.get("role", "identity"), extra.get("placeholder")
    return TrialKey(name, role, conditions, field.default, field.description or "", placeholder)


def trial_keys() -> list[TrialKey]:
    """Every trial key in `TrialConfig`'s order."""
    return [_trial_key(name, field) for name, field in TrialConfig.model_fields.items()]


def runtime_keys() -> frozenset[str]:
    """Trial keys left out of a trial's identity: where or how fast it runs, not its result."""
    return frozenset(key.name for key in trial_keys() if key.role == "runtime")


def inapplicable(config: TrialConfig, key: str) -> str | None:
    """Why `key` takes no effect in this trial (`applies to method slot only, not dense`), or
    None when it does."""
    for other, allowed in _trial_key(key, TrialConfig.model_fields[key]).applies.items():
        value = getattr(config, other)
        if value not in allowed:
            plural = "s" if len(allowed) > 1 else ""
            return f"applies to {other}{plural} {', '.join(allowed)} only, not {value}"
    return None


def inapplicable_to_method(method: str) -> frozenset[str]:
    """Keys that take no effect under `method` whatever else is set (a dense baseline's K, a
    slot machine's keep_fraction): left out of its name and of what a report finds varying."""
    return frozenset(
        key.name
        for key in trial_keys()
        if "method" in key.applies and method not in key.applies["method"]
    )


def param_placeholders(method: str) -> dict[str, str]:
    """What a run of `method` shows in its MLflow params for the slot machine's own settings
    that it does not have (`k` 0, `n/a`); empty for a slot machine."""
    return {
        key.name: key.placeholder
        for key in trial_keys()
        if key.placeholder is not None and method not in key.applies.get("method", (method,))
    }


def require_resolved(config: TrialConfig, user: str) -> None:
    """TypeError unless `config` is resolved: what is hashed or logged must be what trains."""
    if not isinstance(config, ResolvedConfig):
        raise TypeError(f"{user} takes a resolved config: call TrialConfig.resolved() first")


def trial_key(config: ResolvedConfig) -> str:
    """A trial's identity across resumes: a hash of the resolved settings that can change its
    results (a default spelled out is the same trial)."""
    require_resolved(config, "trial_key")
    settings = config.model_dump(mode="json", exclude=set(runtime_keys()))
    for key, default in LATER_KEYS.items():  # trials stored before the key keep their identity
        if settings.get(key) == default:
            del settings[key]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
