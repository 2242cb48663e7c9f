"""The study schema: the typed sections of a study file (validated whole by `validate`)."""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from slotsweep.config import ResolvedConfig, TrialConfig
from slotsweep.registry import DEFAULT_TRACKING_URI
from slotsweep.study.groups import TrialGroup

DIMENSION_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
DISCRETE_KINDS = ("grid", "choice")


class StudyError(ValueError):
    """A study that cannot run; `problems` holds every problem found, as 'key.path: message'."""

    def __init__(self, problems: Sequence[str], source: str = "<study>") -> None:
        self.problems = list(dict.fromkeys(problems))  # several checks may reach one problem
        self.source = source
        super().__init__(f"invalid study {source}:\n" + "\n".join(f"  {p}" for p in self.problems))

    def __reduce__(self) -> tuple[type, tuple[list[str], str]]:
        return type(self), (self.problems, self.source)  # pickles (Ray) with its own arguments


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Dimension(_Strict):
    """One varying trial key: values to enumerate (grid, choice) or a range to sample."""

    grid: list[Any] | None = Field(None, min_length=1)
    choice: list[Any] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None  # hi excluded, as in tune.randint

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        given = [kind for kind in DIMENSION_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DIMENSION_KINDS)} (got {given})")
        lo, hi = (0, 1) if self.kind in DISCRETE_KINDS else self.bounds
        if not lo < hi or (self.kind == "loguniform" and lo <= 0):
            floor = "0 < " if self.kind == "loguniform" else ""
            raise ValueError(f"{self.kind} needs [lo, hi] with {floor}lo < hi")
        return self

    @property
    def kind(self) -> str:
        """grid, choice, uniform, loguniform or randint."""
        return next(kind for kind in DIMENSION_KINDS if getattr(self, kind) is not None)

    @property
    def values(self) -> list[Any]:
        """The values of a grid or choice dimension."""
        if self.kind not in DISCRETE_KINDS:
            raise ValueError(f"a {self.kind} dimension has bounds, not values")
        return list(getattr(self, self.kind))

    def draw(self, rng: random.Random) -> Any:
        """One value drawn from this dimension (random search)."""
        if self.kind in DISCRETE_KINDS:
            return rng.choice(self.values)
        lo, hi = self.bounds
        if self.kind == "randint":
            return rng.randrange(int(lo), int(hi))
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return rng.uniform(lo, hi)

    def size(self) -> float:
        """How many distinct values the dimension holds (inf for a continuous range)."""
        if self.kind in DISCRETE_KINDS:
            return len(set(map(repr, self.values)))
        return self.bounds[1] - self.bounds[0] if self.kind == "randint" else math.inf

    def probe_values(self) -> list[Any]:
        """The values whose validity stands for the whole dimension's: every value of a
        discrete one, the bounds of a range (randint's upper bound excluded)."""
        if self.kind in DISCRETE_KINDS:
            return self.values
        lo, hi = self.bounds
        return [lo, hi - 1 if self.kind == "randint" else hi]

    @property
    def bounds(self) -> tuple[float, float]:
        """[lo, hi] of a uniform, loguniform or randint dimension."""
        if self.kind in DISCRETE_KINDS:
            raise ValueError(f"a {self.kind} dimension has values, not bounds")
        return getattr(self, self.kind)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Objectives = Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)]


class SearchSpec(_Strict):
    """How the space is explored, and the objectives that the search and the scheduler follow."""

    algorithm: Literal["grid", "random", "optuna"] = "grid"
    sampler: Literal["tpe", "gp", "nsga2", "random"] = "tpe"  # optuna's; other algorithms: unused
    num_samples: int = Field(1, ge=1)  # random: samples per seed; optuna: trials
    metric: Objectives = ["best_val_accuracy"]  # a str is read as a one-item list
    mode: Annotated[list[Literal["max", "min"]], BeforeValidator(_as_list)] = ["max"]
    seed: int = 0  # the sampler's, so that a search repeats


class SchedulerSpec(_Strict):
    """Trial scheduler on the search's metric: fifo runs trials to the end, asha stops weak ones."""

    name: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1)  # epochs every trial runs before asha may stop it
    reduction_factor: float = Field(2.0, gt=1)
    max_t: int | None = Field(None, ge=1)  # None: the most epochs any trial runs


class Resources(_Strict):
    """What one trial reserves; fractions let several trials share a core or a GPU."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class Tracking(_Strict):
    """The MLflow store and experiment; None falls back to the CLI, then the defaults."""

    uri: str | None = None
    experiment: str | None = Field(None, min_length=1)


def _unique(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed repeats: {seeds}")
    return seeds


class Study(_Strict):
    """A validated study; build it with `load_study` or `parse_study`, which check it whole."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    trial: dict[str, Any] = {}  # TrialConfig settings that every trial shares
    space: dict[str, Dimension] = {}
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], AfterValidator(_unique)] = Field(
        [0], min_length=1
    )
    baselines: list[dict[str, Any]] = []  # each overrides `trial` and skips `space`
    search: SearchSpec = SearchSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: Resources = Resources()
    max_concurrent: int = Field(1, ge=1)
    tracking: Tracking = Tracking()
    # fault tolerance: a trial saves its state every `checkpoint_every` epochs (0: never) into
    # `storage` (Tune's storage_path: a folder, shared on a cluster, or a pyarrow URI such as
    # s3://...), and a trial whose worker or node is lost restarts from it up to `retries` times
    checkpoint_every: int = Field(5, ge=0)
    retries: int = Field(2, ge=0)
    storage: str | None = None
    # Named sets of dotted overrides (`launch --preset quick`), applied before `--set`
    presets: dict[str, dict[str, Any]] = {}

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment: the tracking block's, else the study's name."""
        return self.tracking.experiment or self.name

    def tracking_uri(self, cli_uri: str | None = None) -> str:
        """The MLflow store: the command line's, else the study's, else MLflow's default."""
        return cli_uri or self.tracking.uri or DEFAULT_TRACKING_URI

    def base_trial(self) -> dict[str, Any]:
        """The `trial` block: settings every trial shares."""
        return dict(self.trial)

    def search_space(self) -> dict[str, Dimension]:
        """The dimensions Optuna samples while the study runs (grid and random fix theirs)."""
        return dict(self.space) if self.search.algorithm == "optuna" else {}

    def space_points(self) -> list[dict[str, Any]]:
        """The space's points known before the study runs: every grid point (first dimension
        slowest), or random search's samples, drawn from `search.seed` so a study repeats."""
        if self.search.algorithm == "random":
            return self._sampled_points()
        if self.search.algorithm != "grid":
            return []
        values = [dim.values for dim in self.space.values()]
        return [dict(zip(self.space, point, strict=True)) for point in itertools.product(*values)]

    def _sampled_points(self) -> list[dict[str, Any]]:
        """num_samples distinct points (fewer only if the space holds fewer)."""
        rng, points = random.Random(self.search.seed), {}
        for _ in range(100 * self.search.num_samples):
            point = {key: dim.draw(rng) for key, dim in self.space.items()}
            points.setdefault(tuple(point.values()), point)  # first draw of each point, in order
            if len(points) == self.search.num_samples:
                break
        return list(points.values())

    @functools.cached_property
    def groups(self) -> tuple[TrialGroup, ...]:
        """The study expanded once: every grid or random point (or, for Optuna, every bound of
        every dimension, checked but not run), then every baseline, in run order."""
        points = self.space_points()
        if self.search.algorithm == "optuna":
            points = [
                {key: value} for key, dim in self.space.items() for value in dim.probe_values()
            ]
        trial = {key: f"trial.{key}" for key in self.trial}
        groups = [
            TrialGroup(
                _point_path(point),
                {**self.trial, **point},
                trial | {key: f"space.{key}" for key in point},
                tuple(self.seeds),
                runs=self.search.algorithm != "optuna",
            )
            for point in points
        ]
        for i, baseline in enumerate(self.baselines):
            origin = trial | {key: f"baselines[{i}].{key}" for key in baseline}
            groups.append(
                TrialGroup(f"baselines[{i}]", {**self.trial, **baseline}, origin, tuple(self.seeds))
            )
        return tuple(groups)

    def fixed_trials(self) -> list[ResolvedConfig]:
        """Trials known before the study runs, resolved: grid points x seeds, then baselines x
        seeds."""
        return [config for group in self.groups if group.runs for config in group.trials()]

    def searched_trial_count(self) -> int:
        """Trials Optuna adds while the study runs (random search's are fixed in advance)."""
        return self.search.num_samples if self.search.algorithm == "optuna" else 0

    def trial_count(self) -> int:
        """Every trial of the study, fixed and searched."""
        fixed = sum(len(group.seeds) for group in self.groups if group.runs)
        return fixed + self.searched_trial_count()

    def scheduler_max_t(self) -> int:
        """The scheduler's horizon in epochs: max_t, else the most epochs any trial runs."""
        if self.scheduler.max_t is not None:
            return self.scheduler.max_t
        epochs = [TrialConfig.model_validate(self.trial).epochs]
        epochs += [baseline["epochs"] for baseline in self.baselines if "epochs" in baseline]
        if "epochs" in self.space:
            dim = self.space["epochs"]
            epochs += dim.values if dim.kind in DISCRETE_KINDS else [dim.bounds[1] - 1]
        return max(epochs)


def _point_path(point: dict[str, Any]) -> str:
    return "space (" + ", ".join(f"{k}={v}" for k, v in point.items()) + ")" if point else "trial"
