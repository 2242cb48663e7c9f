"""The reference tables of `docs/`, generated from the code: the vocabularies, the trial keys,
the metrics, the recipes and other defaults, the data sets, the architectures, and the paper's
settings, numbers and findings.

In the docs each table stands between marker comments,

    <!-- generated: trial_keys -->
    ...
    <!-- end generated -->

`python -m slotsweep.report.reference` prints every table with its markers,
`python -m slotsweep.report.reference --write` rewrites the blocks of `README.md` and
`docs/*.md` in place, and `--check` exits 1 when one differs (`tests/test_docs.py` keeps them
equal).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from slotsweep import registry
from slotsweep.config import TrialConfig, trial_keys
from slotsweep.registry import METRICS
from slotsweep.report import paper_numbers
from slotsweep.report.figures import SELECTION_NAMES

ROOT = Path(__file__).resolve().parents[2]  # the repository: README.md and docs/
BLOCK = re.compile(
    r"^<!-- generated: (?P<name>[a-z_]+) -->\n(?P<body>.*?)^<!-- end generated -->$",
    re.DOTALL | re.MULTILINE,
)
# Images a data set's format holds (channels, side): what a network built for it takes.
_INPUTS = {"idx": (1, 28), "cifar": (3, 32), "synthetic": (1, 28)}
# Trial keys whose defaults docs/settings.md lists beside the recipes'.
_TRAINING_KEYS = (
    "recipe",
    "batch_size",
    "momentum",
    "weight_decay",
    "schedule",
    "restart_period",
    "padding",
    "keep_fraction",
)
_SERIES = {**SELECTION_NAMES, None: "weight-trained"}


def _number(value: float) -> str:
    """0.1, 25, 0.0001: the shortest spelling that reads back as the same number."""
    return f"{value:g}"


def _code(value: object) -> str:
    return f"`{value}`"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- the registries and TrialConfig ---


def trial_key_table() -> str:
    """The trial-key table (markdown), generated from `TrialConfig`."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in trial_keys():
        default = "-" if key.default is None else f"`{key.default}`"
        rows.append(f"| `{key.name}` | {default} | {key.description} |")
    return "\n".join(rows)


def metric_table() -> str:
    """The metric table (markdown), generated from `registry.METRICS`."""
    rows = ["| metric | unit | better | phase | meaning |", "|---|---|---|---|---|"]
    for name, metric in METRICS.items():
        rows.append(
            f"| `{name}` | {metric.unit or '-'} | {metric.direction or '-'} | "
            f"{metric.phase} | {metric.description} |"
        )
    return "\n".join(rows)


def vocabulary_table() -> str:
    """The table of names: archs, methods, data sets and the other choices."""
    registries = (
        registry.ARCHS,
        registry.FAMILIES,
        registry.DATASETS,
        registry.SELECTIONS,
        registry.SHARINGS,
        registry.RECIPES,
        registry.SCHEDULES,
        registry.PADDINGS,
        registry.IMPLS,
    )
    rows = ["| key | names |", "|---|---|"]
    rows += [
        f"| `{reg.kind}` | " + ", ".join(f"`{n}`" for n in reg.names()) + " |" for reg in registries
    ]
    return "\n".join(rows)


def recipe_table() -> str:
    """The recipes side by side (`registry.RECIPES`): value bound, score scales, learning rates."""
    recipes = registry.RECIPES.items()
    default = TrialConfig.model_fields["recipe"].default
    header = (
        "setting",
        *(
            f"`{name}`{' (default)' if name == default else ''}: {recipe.description}"
            for name, recipe in recipes
        ),
    )
    settings: list[tuple[str, Callable[[registry.Recipe], str]]] = [
        (
            "value bound sigma (values U(-sigma, sigma))",
            lambda r: f"sqrt({_number(r.sigma_numerator)} / (fan_in + fan_out))",
        ),
        (
            "score scale lambda, FC layers (scores U(0, lambda * sigma))",
            lambda r: _number(r.score_lambda_fc),
        ),
        ("score scale lambda, conv layers", lambda r: _number(r.score_lambda_conv)),
        ("GS learning rate, K <= 8", lambda r: _number(r.lr_greedy_small_k)),
        ("GS learning rate, K > 8", lambda r: _number(r.lr_greedy_large_k)),
        ("PS learning rate", lambda r: _number(r.lr_probabilistic)),
    ]
    return _table(header, [(label, *(show(r) for _, r in recipes)) for label, show in settings])


def training_default_table() -> str:
    """The default learning rate of each method and the optimiser and layer defaults of
    `TrialConfig`: the settings a trial gets when it names none."""
    rows = []
    for method, family in registry.FAMILIES.items():
        lr = (
            "the recipe's (by selection and K)"
            if family.default_lr is None
            else _number(family.default_lr)
        )
        rows.append((f"`lr` of `{method}`", lr))
    fields = TrialConfig.model_fields
    for key in _TRAINING_KEYS:
        default = fields[key].default
        shown = _number(default) if isinstance(default, float) else str(default)
        rows.append((f"`{key}`", _code(shown)))
    return _table(("setting", "default"), rows)


def dataset_table() -> str:
    """Each data set (`registry.DATASETS`): format, validation share, augmentation, where found."""
    from slotsweep.data.augment import PAD

    rows = []
    for name, spec in registry.DATASETS.items():
        augment = f"random flip and {PAD}-pixel padded crop" if spec.augment else "none"
        found = f"`/usr/share/datasets/{spec.debian_name}`" if spec.debian_name else "-"
        if spec.apt_package:
            found += f" (Debian's `{spec.apt_package}`)"
        rows.append((_code(name), spec.kind, _number(spec.val_fraction), augment, found))
    header = (
        "dataset",
        "format",
        "default `val_fraction`",
        "training augmentation",
        "Debian folder",
    )
    return _table(header, rows)


def _weights(arch: str, kind: str) -> int:
    """Weights of `arch`'s dense network built for images of format `kind` (authors' padding),
    counted on the meta device (nothing allocated)."""
    import torch

    from slotsweep.models import create_model
    from slotsweep.nn import LayerSpec

    channels, size = _INPUTS[kind]
    with torch.device("meta"):
        model = create_model(arch, LayerSpec(method="dense"), in_channels=channels, image_size=size)
    return sum(p.numel() for p in model.parameters() if p.dim() > 1)


def arch_table() -> str:
    """Each architecture (`registry.ARCHS`): default dropout, the paper's data set, weights."""
    rows = []
    for name, spec in registry.ARCHS.items():
        paper = paper_numbers.SETTINGS.get(name)
        dataset = paper.dataset if paper else "fashion_mnist"
        kind = registry.DATASETS.get(dataset).kind
        rows.append(
            (
                _code(name),
                _number(spec.default_dropout),
                _code(paper.dataset) if paper else "-",
                f"{_weights(name, kind):,}",
            )
        )
    header = ("arch", "default `dropout`", "paper's data set", "weights (authors' padding)")
    return _table(header, rows)


# --- the paper (slotsweep/report/paper_numbers.py) ---


def paper_settings_table() -> str:
    """What the paper trains each architecture with (`paper_numbers.SETTINGS`), and edge-popup's
    usual training."""
    rows = [
        (
            _code(arch),
            _code(s.dataset),
            str(s.slot_epochs),
            str(s.baseline_epochs),
            _code(s.schedule),
            _number(s.val_fraction),
        )
        for arch, s in paper_numbers.SETTINGS.items()
    ]
    header = (
        "arch",
        "data set",
        "epochs, slot machine",
        "epochs, weight-trained",
        "schedule",
        "validation share",
    )
    edge_popup_lr = registry.FAMILIES.get("edge_popup").default_lr
    return (
        _table(header, rows)
        + f"\n\nEdge-popup (Ramanujan et al., 2020): {paper_numbers.EDGE_POPUP_EPOCHS} epochs, "
        f"cosine schedule, lr {_number(edge_popup_lr)}."
    )


def _accuracy(value: float, precision: float) -> str:
    """An accuracy to the digits its precision carries: 97.0 (+-0.05), 91 (+-0.5), 10 (+-1)."""
    decimals = max(0, -math.floor(math.log10(2 * precision)))
    return f"{value:.{decimals}f}"


def paper_text_table() -> str:
    """The accuracies the paper's text states (`paper_numbers.NUMBERS`, source text); points with
    the same K, data set, value, precision and note are one row."""
    groups: dict[tuple, dict[str, list[str]]] = {}
    for n in paper_numbers.NUMBERS:
        if n.source == paper_numbers.TEXT:
            where = groups.setdefault((n.k, n.dataset, n.value, n.precision, n.note), {})
            where.setdefault(n.arch, []).append(_SERIES[n.selection])
    rows = []
    for (k, dataset, value, precision, note), archs in groups.items():
        series = list(archs.values())
        if all(s == series[0] for s in series):  # one list of series for every arch of the row
            where = ", ".join(map(_code, archs)) + f" ({', '.join(series[0])})"
        else:
            where = ", ".join(f"{_code(a)} ({', '.join(s)})" for a, s in archs.items())
        rows.append(
            (
                "-" if k is None else str(k),
                where,
                _code(dataset),
                f"{_accuracy(value, precision)} ± {_number(precision)}",
                note or "-",
            )
        )
    return _table(("K", "arch (series)", "data set", "test accuracy %", "note"), rows)


def paper_figure_table() -> str:
    """Figure 2 read off (`paper_numbers.NUMBERS`, source figure): one row per arch and series,
    one column per K, the weight-trained network last."""
    figure = [n for n in paper_numbers.NUMBERS if n.source == paper_numbers.FIGURE]
    precision = max(n.precision for n in figure)
    ks = sorted({n.k for n in figure if n.k is not None})
    series: dict[tuple[str, str, str | None], dict[int | None, float]] = {}
    for n in figure:
        if n.method == "slot":
            series.setdefault((n.arch, n.dataset, n.selection), {})[n.k] = n.value
    for n in figure:
        if n.method != "slot":  # the weight-trained network's value goes in the GS row
            series.setdefault((n.arch, n.dataset, "greedy"), {})[None] = n.value
    rows = [
        (
            _code(arch),
            _code(dataset),
            _SERIES[selection],
            *(_accuracy(values[k], precision) if k in values else "" for k in ks),
            _accuracy(values[None], precision) if None in values else "",
        )
        for (arch, dataset, selection), values in series.items()
    ]
    header = ("arch", "data set", "series", *(f"K={k}" for k in ks), "weight-trained")
    return _table(header, rows) + f"\n\nRead off the figure: ± {_number(precision)} points."


def paper_findings_table() -> str:
    """The paper's qualitative findings a report checks (`paper_numbers.FINDINGS`)."""
    return _table(
        ("finding", "the paper says"),
        [(_code(name), text) for name, text in paper_numbers.FINDINGS.items()],
    )


GENERATORS: dict[str, Callable[[], str]] = {
    "vocabulary": vocabulary_table,
    "trial_keys": trial_key_table,
    "metrics": metric_table,
    "recipes": recipe_table,
    "training_defaults": training_default_table,
    "datasets": dataset_table,
    "archs": arch_table,
    "paper_settings": paper_settings_table,
    "paper_text": paper_text_table,
    "paper_figure": paper_figure_table,
    "paper_findings": paper_findings_table,
}


# --- the blocks in the docs ---


def block(name: str) -> str:
    """Block `name` as the docs hold it, markers included."""
    return f"<!-- generated: {name} -->\n\n{GENERATORS[name]()}\n\n<!-- end generated -->"


def blocks_in(text: str) -> list[tuple[str, str]]:
    """(name, content) of every generated block in `text`, content without its blank edges."""
    return [(m["name"], m["body"].strip("\n")) for m in BLOCK.finditer(text)]


def rewrite(text: str) -> str:
    """`text` with every generated block holding what the code generates now (ValueError for a
    block of an unknown name)."""

    def fresh(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise ValueError(f"unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        return block(name)

    return BLOCK.sub(fresh, text)


def doc_files(root: Path = ROOT) -> list[Path]:
    """The files that may hold generated blocks: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def stale_files(root: Path = ROOT) -> list[Path]:
    """The doc files whose generated blocks differ from what the code generates now."""
    return [path for path in doc_files(root) if rewrite(path.read_text()) != path.read_text()]


def write_docs(root: Path = ROOT) -> list[Path]:
    """Rewrites every generated block in place; returns the files that changed."""
    changed = stale_files(root)
    for path in changed:
        path.write_text(rewrite(path.read_text()))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slotsweep.report.reference", description=__doc__.split("\n\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the docs' blocks in place")
    mode.add_argument("--check", action="store_true", help="exit 1 when a block differs")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the repository (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.write:
        for path in write_docs(args.root):
            print(f"rewrote {path.relative_to(args.root)}")
        return 0
    if args.check:
        stale = stale_files(args.root)
        for path in stale:
            print(f"out of date: {path.relative_to(args.root)}", file=sys.stderr)
        return 1 if stale else 0
    print("\n\n".join(block(name) for name in GENERATORS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
