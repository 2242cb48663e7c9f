"""The reference tables of `docs/`, generated from the code: the vocabularies, the trial keys
and the metrics (`python -m slotsweep.report.reference` prints them; a test keeps the docs'
copies equal)."""

from __future__ import annotations

from slotsweep import registry
from slotsweep.config import trial_keys
from slotsweep.registry import METRICS


def trial_key_table() -> str:
    """The trial-key table (markdown), generated from `TrialConfig`."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in trial_keys():
        default = "-" if key.default is None else f"`{key.default}`"
        rows.append(f"| `{key.name}` | {default} | {key.description} |")
    return "\n".join(rows)


def metric_table() -> str:
    """The README's metric table (markdown)."""
    rows = ["| metric | unit | better | phase | meaning |", "|---|---|---|---|---|"]
    for name, metric in METRICS.items():
        rows.append(
            f"| `{name}` | {metric.unit or '-'} | {metric.direction or '-'} | "
            f"{metric.phase} | {metric.description} |"
        )
    return "\n".join(rows)


def vocabulary_table() -> str:
    """The README's table of names: archs, methods, data sets and the other choices."""
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


if __name__ == "__main__":
    print(vocabulary_table(), trial_key_table(), metric_table(), sep="\n\n")
