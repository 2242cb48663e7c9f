"""The paper's qualitative findings, checked on a study's rows: each claim, its verdict and the
numbers that decide it. A finding whose rows the study lacks is not stated.

Where a claim compares two configurations that ran the same seeds (GS against PS at one K, a
slot machine against the weight-trained network, sharing against none, finetuned against weight
training alone), it is decided on the per-seed differences of test accuracy in points: their
mean and 95% t-interval (`slotsweep.analysis`). The verdict is *held* when the interval lies on
the claimed side of the claim's threshold, *did not hold* when it lies on the other side, and
*inconclusive* when it crosses the threshold or only one seed is shared. A claim made at several
K holds when it holds at each, and did not hold when it did not at one."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from slotsweep.analysis import (
    HELD,
    NOT_HELD,
    ConfigurationRow,
    Interval,
    Paired,
    combine,
    decide,
    paired,
    row_interval,
    seed_values,
)
from slotsweep.report.paper import percent
from slotsweep.report.paper_numbers import CHANCE, FINDINGS

CHANCE_MARGIN = 5.0  # points above chance that still count as "at chance"
JUMP = 30.0  # points from K=1 to K=2 that make "a large jump"
PLATEAU_GAP = 1.0  # points below the weight-trained network that still make "within a point"
SMALL_COST = 1.0  # points that sharing may cost at large K and still be "little"
PAPER_LAMBDA_LR = (0.1, 0.2)  # the paper's FC lambda and its GS lr at K <= 8
OBSERVED = "observed"  # a description, not a test


@dataclass(frozen=True)
class Test:
    """One comparison a finding is decided on: the interval (points) of a per-seed difference
    or of one configuration's accuracy, and the side of `threshold` the claim puts it on."""

    label: str
    interval: Interval | None
    threshold: float
    above: bool = True

    @property
    def verdict(self) -> str:
        return decide(self.interval, self.threshold, self.above)


@dataclass(frozen=True)
class Finding:
    """One of the paper's claims: `verdict` is held, did not hold, inconclusive, or observed
    (a description, not a test); `tests` the comparisons it was decided on."""

    claim: str
    verdict: str
    evidence: str
    tests: tuple[Test, ...] = ()

    @property
    def held(self) -> bool | None:
        """True (held), False (did not hold), None (inconclusive or observed)."""
        return {HELD: True, NOT_HELD: False}.get(self.verdict)


def accuracy_metric(row: ConfigurationRow) -> str:
    """The accuracy a row is judged by: after finetuning where the row finetuned."""
    return (
        "finetune_test_accuracy"
        if row.mean("finetune_test_accuracy") is not None
        else "test_accuracy"
    )


def accuracy(row: ConfigurationRow) -> float | None:
    """Mean test accuracy in %: after finetuning where the row finetuned."""
    value = percent(row, accuracy_metric(row))
    return None if value is None else value[0]


def points(row: ConfigurationRow) -> dict[str, float]:
    """{seed: accuracy in %} of a row (after finetuning where it finetuned)."""
    return seed_values(row, accuracy_metric(row), 100)


def _slot_series(
    rows: list[ConfigurationRow], by: str, sharing: str | None = "none"
) -> dict[str, dict[int, ConfigurationRow]]:
    """{series value: {K: row}} of the slot rows without finetuning (and with `sharing`,
    unless None), series by `by`."""
    series: dict[str, dict[int, ConfigurationRow]] = defaultdict(dict)
    for row in rows:
        s = row.settings
        if sharing is not None and s.get("sharing", "none") != sharing:
            continue
        if s.get("method") == "slot" and not int(s.get("finetune_epochs", 0) or 0):
            if accuracy(row) is not None:
                series[s.get(by, "")][int(s["k"])] = row
    return dict(series)


def _dense(rows: list[ConfigurationRow]) -> ConfigurationRow | None:
    """The best weight-trained row (by mean accuracy)."""
    dense = [r for r in rows if r.settings.get("method") == "dense" and accuracy(r) is not None]
    return max(dense, key=accuracy) if dense else None


def _pair(a: ConfigurationRow, b: ConfigurationRow) -> Paired:
    return paired(points(a), points(b))


def decided(claim: str, evidence: str, *tests: Test) -> Finding:
    """A finding whose verdict combines its tests' (held only when every one held)."""
    return Finding(claim, combine(t.verdict for t in tests), evidence, tests)


def _level_interval(row: ConfigurationRow) -> Interval:
    """A row's accuracy over seeds in %, with its 95% interval."""
    return row_interval(row, accuracy_metric(row)).scaled(100)


def _level(row: ConfigurationRow) -> str:
    return _level_interval(row).text(unit="%")


def k_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """K=1 at chance, the jump at K=2, the plateau near the weight-trained network."""
    found = []
    for name, by_k in _slot_series(rows, "selection").items():
        if 1 in by_k:
            interval = _level_interval(by_k[1])
            found.append(
                decided(
                    f"{FINDINGS['k1_chance']} ({name})",
                    f"K=1: {_level(by_k[1])} (at most {CHANCE + CHANCE_MARGIN:g}% counts)",
                    Test(f"{name} K=1", interval, CHANCE + CHANCE_MARGIN, above=False),
                )
            )
        if 1 in by_k and 2 in by_k:
            jump = _pair(by_k[2], by_k[1])
            found.append(
                decided(
                    f"{FINDINGS['k2_jump']} ({name})",
                    f"K=1 {_level(by_k[1])} -> K=2 {_level(by_k[2])}; K=2 - K=1 per seed: "
                    f"{jump.text()} (more than {JUMP:g} points counts)",
                    Test(f"{name} K=2 - K=1", jump.interval, JUMP),
                )
            )
    return found + plateau_findings(rows)


def plateau_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """GS at every K >= 8 within a point of the weight-trained network, seed by seed."""
    dense = _dense(rows)
    greedy = _slot_series(rows, "selection").get("greedy", {})
    large = {k: row for k, row in sorted(greedy.items()) if k >= 8}
    if dense is None or not large:
        return []
    gaps = {k: _pair(row, dense) for k, row in large.items()}
    detail = ", ".join(f"K={k} {gap.text()}" for k, gap in gaps.items())
    return [
        decided(
            FINDINGS["plateau"],
            f"GS - weight-trained ({_level(dense)}) per seed: {detail} "
            f"(above -{PLATEAU_GAP:g} counts)",
            *(Test(f"GS K={k} - dense", g.interval, -PLATEAU_GAP) for k, g in gaps.items()),
        )
    ]


def selection_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """GS above PS at every K >= 2 that both ran, seed by seed."""
    series = _slot_series(rows, "selection")
    gs, ps = series.get("greedy", {}), series.get("probabilistic", {})
    ks = sorted(k for k in set(gs) & set(ps) if k >= 2)
    if not ks:
        return []
    gaps = {k: _pair(gs[k], ps[k]) for k in ks}
    detail = ", ".join(f"K={k} {gap.text()}" for k, gap in gaps.items())
    return [
        decided(
            FINDINGS["gs_above_ps"],
            f"GS - PS per seed: {detail}",
            *(Test(f"K={k} GS - PS", gap.interval, 0.0) for k, gap in gaps.items()),
        )
    ]


def conv6_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """CONV-6 at K=8 (GS) above its weight-trained network, seed by seed."""
    conv6 = [r for r in rows if r.settings.get("arch") == "conv6"]
    gs8 = _slot_series(conv6, "selection").get("greedy", {}).get(8)
    dense = _dense(conv6)
    if gs8 is None or dense is None:
        return []
    gap = _pair(gs8, dense)
    return [
        decided(
            FINDINGS["conv6_beats_dense"],
            f"K=8 {_level(gs8)} against {_level(dense)}; per seed {gap.text()}",
            Test("GS K=8 - dense", gap.interval, 0.0),
        )
    ]


def sharing_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Sharing's cost (none minus shared, per seed) at the smallest K >= 2 above its cost at the
    largest K, and that cost at most SMALL_COST points."""
    series = _slot_series(rows, "sharing", sharing=None)
    alone = series.get("none", {})
    found = []
    for mode in ("layer", "global"):
        shared = series.get(mode, {})
        ks = sorted(k for k in set(alone) & set(shared) if k >= 2)
        if len(ks) < 2:
            continue
        small = _pair(alone[ks[0]], shared[ks[0]])
        large = _pair(alone[ks[-1]], shared[ks[-1]])
        shrinks = paired(small.differences, large.differences)
        found.append(
            decided(
                f"{FINDINGS['sharing']} ({mode})",
                f"cost at K={ks[0]}: {small.text()} points, at K={ks[-1]}: {large.text()} "
                f"points (below {SMALL_COST:g} counts as little); the drop: {shrinks.text()}",
                Test(f"cost at K={ks[0]} - cost at K={ks[-1]}", shrinks.interval, 0.0),
                Test(f"cost at K={ks[-1]} (none - {mode})", large.interval, SMALL_COST, False),
            )
        )
    return found


def finetune_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Each finetuned split against weight training alone for the same total epochs."""
    dense = {
        int(r.settings["epochs"]): r
        for r in rows
        if r.settings.get("method") == "dense" and accuracy(r) is not None
    }
    pairs = []
    for row in rows:
        s = row.settings
        if s.get("method") != "slot" or row.mean("finetune_test_accuracy") is None:
            continue
        total = int(s["epochs"]) + int(s["finetune_epochs"])
        if total in dense:
            pairs.append((f"{s['epochs']}+{s['finetune_epochs']}", _pair(row, dense[total])))
    if not pairs:
        return []
    tests = [Test(f"{split} finetuned - dense", gap.interval, 0.0) for split, gap in pairs]
    held = sum(t.verdict == HELD for t in tests)
    detail = ", ".join(f"{split}: {gap.text()}" for split, gap in pairs)
    return [
        decided(
            FINDINGS["finetune"],
            f"finetuned above weight training alone in {held} of {len(pairs)} "
            f"splits (finetuned - alone per seed: {detail})",
            *tests,
        )
    ]


def storage_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Not the paper's: edge-popup against the slot machine of the same storage (K=2, 1 bit)."""
    popup = [
        (r.settings.get("keep_fraction", "?"), accuracy(r))
        for r in rows
        if r.settings.get("method") == "edge_popup" and accuracy(r) is not None
    ]
    slot2_row = _slot_series(rows, "method").get("slot", {}).get(2)
    slot2 = None if slot2_row is None else accuracy(slot2_row)
    if not popup or slot2 is None:
        return []
    best = max(popup, key=lambda item: item[1])
    detail = ", ".join(f"keep {keep}: {value:.2f}%" for keep, value in popup)
    return [
        Finding(
            "edge-popup (1-bit mask) against the slot machine of equal storage (K=2)",
            OBSERVED,
            f"slot K=2 {slot2:.2f}%; edge-popup {detail}; best edge-popup "
            f"{best[1] - slot2:+.2f} points",
        )
    ]


def lambda_lr_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Where the best cell of a lambda x lr grid lies, and the paper's choice (0.1, 0.2) in it."""
    cells = {
        (float(r.settings["score_lambda"]), float(r.settings["lr"])): accuracy(r)
        for r in rows
        if r.settings.get("method") == "slot"
        and accuracy(r) is not None
        and r.settings.get("score_lambda") not in (None, "auto")
    }
    if len({lam for lam, _ in cells}) < 2 or len({lr for _, lr in cells}) < 2:
        return []
    (lam, lr), best = max(cells.items(), key=lambda item: item[1])
    paper = cells.get(PAPER_LAMBDA_LR)
    note = (
        ""
        if paper is None
        else f"; the paper's lambda {PAPER_LAMBDA_LR[0]:g}, lr "
        f"{PAPER_LAMBDA_LR[1]:g}: {paper:.2f}% ({paper - best:+.2f})"
    )
    worst = min(cells.values())
    return [
        Finding(
            "score initialisation against learning rate (the paper's choice: lambda 0.1 "
            "for FC layers, lr 0.2)",
            OBSERVED,
            f"best lambda {lam:g}, lr {lr:g}: {best:.2f}%; worst cell {worst:.2f}%{note}",
        )
    ]


def findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Every finding the study's rows can decide."""
    return (
        k_findings(rows)
        + selection_findings(rows)
        + conv6_findings(rows)
        + sharing_findings(rows)
        + finetune_findings(rows)
        + storage_findings(rows)
        + lambda_lr_findings(rows)
    )


FINDINGS_HEADER = (
    "claim",
    "verdict",
    "comparison",
    "mean",
    "ci_low",
    "ci_high",
    "seeds",
    "threshold",
    "claimed_side",
    "comparison_verdict",
)


def write_findings_csv(found: list[Finding], path: Path) -> None:
    """findings.csv: one line per comparison a finding was decided on (points: the mean of the
    per-seed differences, or of one configuration's accuracy, with its 95% interval), and one
    per observation (no numbers)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FINDINGS_HEADER)
        for finding in found:
            if not finding.tests:
                writer.writerow([finding.claim, finding.verdict, finding.evidence])
            for test in finding.tests:
                i = test.interval
                numbers = [None] * 4 if i is None else [i.mean, i.low, i.high, i.n]
                writer.writerow(
                    [finding.claim, finding.verdict, test.label]
                    + numbers  # None: an empty cell
                    + [test.threshold, "above" if test.above else "below", test.verdict]
                )
