"""Every vocabulary of slotsweep, declared once: what the config types, the `train` flags, the
MLflow params, the report's columns, Tune's reported keys and the docs' tables are read from.

Adding a name is one entry here or one decorated definition beside its code:
- an architecture: `@register_model(default_dropout=...)` on its builder in `slotsweep/models.py`;
- a layer family (a method): `@register_family` on a `LayerFamily` subclass (`slotsweep/nn/`);
- a data set: one `DatasetSpec` in `DATASETS` (`slotsweep/data/catalog.py`);
- a learning-rate schedule: `@register_schedule` in `slotsweep/train/optim.py`;
- a metric: one `Metric` in `METRICS` below (the trainer must then measure it);
- a trial key: one field of `TrialConfig` (`slotsweep/config.py`), its role and where it applies
  in `json_schema_extra`.
Registries that their code fills (archs, families, data sets, schedules) import that code the
first time they are read, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default, relative to the folder

T = TypeVar("T")


def _either(names: tuple[str, ...]) -> str:
    """'a', 'b' or 'c': pydantic's wording for a Literal, so messages read the same."""
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class Registry(Generic[T]):
    """The named entries of one vocabulary, in registration order."""

    def __init__(self, kind: str, provider: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._provider = provider  # the module whose import registers the built-in entries
        # prefix -> resolver of the names under it (`torchvision/NAME`): entries made on demand
        self._prefixes: dict[str, Callable[[str], T]] = {}

    def _loaded(self) -> dict[str, T]:
        if self._provider is not None:
            provider, self._provider = self._provider, None
            importlib.import_module(provider)
        return self._entries

    def register(self, name: str, entry: T) -> T:
        """Adds `entry` under `name`; a name registered twice is an error, not an override."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def register_prefix(self, prefix: str, resolve: Callable[[str], T]) -> None:
        """Names `PREFIX/NAME` resolve to `resolve(NAME)`, which raises ValueError naming the
        known ones for an unknown NAME: a vocabulary of another library (torchvision's models),
        not listed by `names()` but accepted by `get` and validation."""
        self._prefixes[prefix] = resolve

    def prefixes(self) -> tuple[str, ...]:
        """The prefixes of names resolved on demand (`register_prefix`)."""
        self._loaded()
        return tuple(self._prefixes)

    def unregister(self, name: str) -> T:
        """Removes and returns the entry `name` (tests that register a toy one clean up)."""
        return self._loaded().pop(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._loaded())

    def get(self, name: str) -> T:
        """The entry `name`; ValueError naming every known one otherwise."""
        entries = self._loaded()
        if name in entries:
            return entries[name]
        prefix, _, rest = name.partition("/")
        if rest and prefix in self._prefixes:
            return self._prefixes[prefix](rest)
        also = [f"'{prefix}/NAME'" for prefix in self._prefixes]
        raise ValueError(
            f"unknown {self.kind} {name!r}; choose one of {_either(self.names())}"
            + (f" (or {', '.join(also)})" if also else "")
        )

    def items(self) -> list[tuple[str, T]]:
        return list(self._loaded().items())

    def __contains__(self, name: object) -> bool:
        if name in self._loaded():
            return True
        try:
            return isinstance(name, str) and "/" in name and self.get(name) is not None
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _check(self, value: str) -> str:
        # pydantic is imported by what validates: the layers and `bench/gpu_check.py` run where
        # it is not installed
        from pydantic_core import PydanticCustomError

        if value in self:
            return value
        if "/" in value:  # the resolver's message names what is known under the prefix
            try:
                self.get(value)
            except ValueError as error:
                raise PydanticCustomError(
                    "value_error", "{reason}", {"reason": str(error)}
                ) from None
        names = self.names() + tuple(f"{prefix}/NAME" for prefix in self._prefixes)
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": _either(names)}
        )

    def field_type(self) -> Any:
        """A pydantic type accepting the names registered when a value is validated, so a name
        registered after `TrialConfig` was defined is accepted too."""
        from pydantic import AfterValidator

        return Annotated[str, AfterValidator(self._check)]


# --- vocabularies declared here: a description per name ---

SELECTIONS: Registry[str] = Registry("selection")
SELECTIONS.register("greedy", "GS: the highest-scored value of each connection")
SELECTIONS.register(
    "probabilistic", "PS: sampled from softmax(scores) each training pass; argmax at evaluation"
)

SHARINGS: Registry[str] = Registry("sharing")
SHARINGS.register("none", "K values per connection")
SHARINGS.register("layer", "K values per layer")
SHARINGS.register(
    "global", "one set of K unit values for the network, scaled by each layer's sigma"
)

PADDINGS: Registry[str] = Registry("padding")
PADDINGS.register("authors", "unpadded CONV-2/4 and first four convs of CONV-6")
PADDINGS.register("same", "every conv padded by 1")

IMPLS: Registry[str] = Registry("impl")
IMPLS.register(
    "auto", "fused where a kernel serves (native on the CPU, Triton on CUDA), else reference"
)
IMPLS.register(
    "fused",
    "one-pass fused update (Triton on CUDA, native on the CPU where it loads, else PyTorch)",
)
IMPLS.register("reference", "autograd + torch SGD")

PRECISIONS: Registry[str] = Registry("precision")
PRECISIONS.register("fp32", "float32 matmuls and convolutions (CUDA's TF32 off)")
PRECISIONS.register(
    "tf32", "TF32 tensor-core matmuls and convolutions on CUDA (10-bit mantissa inputs); CPU: fp32"
)


@dataclass(frozen=True)
class Recipe:
    """Initialisation and learning-rate defaults: the paper's text or the authors' code."""

    description: str
    sigma_numerator: float  # values U(-sigma, sigma), sigma = sqrt(numerator / (fan_in + fan_out))
    score_lambda_fc: float  # scores U(0, lambda * sigma)
    score_lambda_conv: float
    lr_greedy_small_k: float  # GS, K <= 8
    lr_greedy_large_k: float
    lr_probabilistic: float

    def slot_lr(self, selection: str, k: int) -> float:
        """The default score learning rate of a slot machine."""
        if selection == "probabilistic":
            return self.lr_probabilistic
        return self.lr_greedy_small_k if k <= 8 else self.lr_greedy_large_k


RECIPES: Registry[Recipe] = Registry("recipe")
RECIPES.register("paper", Recipe("the paper's text", 2.0, 0.1, 1.0, 0.2, 0.1, 25.0))
RECIPES.register("authors", Recipe("the authors' code", 6.0, 1.0, 1.0, 0.1, 0.01, 50.0))

# --- vocabularies their code fills (see the module docstring) ---

ARCHS: Registry[Any] = Registry("arch", "slotsweep.models")
FAMILIES: Registry[Any] = Registry("method", "slotsweep.nn")
DATASETS: Registry[Any] = Registry("dataset", "slotsweep.data.catalog")
SCHEDULES: Registry[Any] = Registry("schedule", "slotsweep.train.optim")

# --- metrics ---

Phase = Literal["epoch", "running", "final"]


@dataclass(frozen=True)
class Metric:
    """A measured value. `phase`: `epoch` (logged per epoch), `running` (a best-so-far or
    cumulative value reported to Tune each epoch, logged once at the end), `final` (once).
    `compared`: a column of the comparison (report and `FINAL_METRICS`); `optional`: logged by
    some trials only (slot and edge-popup, finetuning)."""

    unit: str
    direction: Literal["max", "min"] | None
    phase: Phase
    description: str
    compared: bool = False
    optional: bool = False


METRICS: Registry[Metric] = Registry("metric")
for _name, _metric in {
    # Declared in the comparison's column order.
    "test_accuracy": Metric(
        "fraction", "max", "final", "test accuracy at the best validation epoch", True
    ),
    "best_val_accuracy": Metric(
        "fraction", "max", "running", "best validation accuracy so far", True
    ),
    "training_cost_flops": Metric(
        "FLOP", "min", "running", "FLOPs of all training steps so far", True
    ),
    "memory_state_bytes": Metric("bytes", "min", "final", "tensor storage training keeps", True),
    "peak_memory_bytes": Metric(
        "bytes", "min", "final", "process RSS peak (CPU) or allocator peak (CUDA)", True
    ),
    "training_memory_bytes": Metric(
        "bytes",
        "min",
        "final",
        "the peak that training adds above "
        "the process's footprint before data and model were built "
        "(CPU RSS), or the allocator peak (CUDA)",
        True,
    ),
    "model_size_bytes": Metric("bytes", "min", "final", "inference storage", True),
    "train_time_s": Metric("s", "min", "final", "the trial's wall time", True),
    "data_time_fraction": Metric(
        "fraction", "min", "final", "share of epoch time spent waiting for batches"
    ),
    "finetune_test_accuracy": Metric(
        "fraction", "max", "final", "test accuracy after finetuning", optional=True
    ),
    "train_loss": Metric("nat", "min", "epoch", "mean training cross-entropy"),
    "train_accuracy": Metric("fraction", "max", "epoch", "training accuracy"),
    "val_accuracy": Metric("fraction", "max", "epoch", "validation accuracy"),
    "epoch_time_s": Metric("s", "min", "epoch", "wall time of the epoch"),
    "data_time_s": Metric("s", "min", "epoch", "time waiting for batches, part of epoch_time_s"),
    "lr": Metric("", None, "epoch", "learning rate of the epoch"),
    "selection_change_fraction": Metric(
        "fraction",
        None,
        "epoch",
        "share of connections whose choice changed this epoch",
        optional=True,
    ),
}.items():
    METRICS.register(_name, _metric)


def metric_names(
    *phases: Phase, compared: bool | None = None, optional: bool | None = None
) -> tuple[str, ...]:
    """Names of the metrics of `phases` (all when none given), filtered by the flags given."""
    return tuple(
        name
        for name, metric in METRICS.items()
        if (not phases or metric.phase in phases)
        and (compared is None or metric.compared == compared)
        and (optional is None or metric.optional == optional)
    )
