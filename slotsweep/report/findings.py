"""The paper's qualitative findings, checked on a study's rows: each claim, whether it held here,
and the numbers that decide it. A finding whose rows the study lacks is not stated."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from slotsweep.report.paper import percent
from slotsweep.report.paper_numbers import CHANCE, FINDINGS
from slotsweep.report.tables import ConfigurationRow

CHANCE_MARGIN = 5.0  # points above chance that still count as "at chance"
JUMP = 30.0  # points from K=1 to K=2 that make "a large jump"
PLATEAU_GAP = 1.0  # points below the weight-trained network that still make "within a point"
SMALL_COST = 1.0  # points that sharing may cost at large K and still be "little"
PAPER_LAMBDA_LR = (0.1, 0.2)  # the paper's FC lambda and its GS lr at K <= 8


@dataclass(frozen=True)
class Finding:
    """One of the paper's claims; `held` is None where the claim is a description, not a test."""

    claim: str
    held: bool | None
    evidence: str


def accuracy(row: ConfigurationRow) -> float | None:
    """Mean test accuracy in %: after finetuning where the row finetuned."""
    value = percent(row, "finetune_test_accuracy") or percent(row)
    return None if value is None else value[0]


def _slot_series(
    rows: list[ConfigurationRow], by: str, sharing: str | None = "none"
) -> dict[str, dict[int, float]]:
    """{series value: {K: accuracy}} of the slot rows without finetuning (and with `sharing`,
    unless None), series by `by`."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for row in rows:
        s = row.settings
        if sharing is not None and s.get("sharing", "none") != sharing:
            continue
        if s.get("method") == "slot" and not int(s.get("finetune_epochs", 0) or 0):
            value = accuracy(row)
            if value is not None:
                series[s.get(by, "")][int(s["k"])] = value
    return dict(series)


def _dense(rows: list[ConfigurationRow]) -> float | None:
    values = [accuracy(r) for r in rows if r.settings.get("method") == "dense"]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def k_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """K=1 at chance, the jump at K=2, the plateau near the weight-trained network."""
    found = []
    for name, by_k in _slot_series(rows, "selection").items():
        if 1 in by_k:
            found.append(
                Finding(
                    f"{FINDINGS['k1_chance']} ({name})",
                    by_k[1] <= CHANCE + CHANCE_MARGIN,
                    f"K=1: {by_k[1]:.2f}%",
                )
            )
        if 1 in by_k and 2 in by_k:
            jump = by_k[2] - by_k[1]
            found.append(
                Finding(
                    f"{FINDINGS['k2_jump']} ({name})",
                    jump >= JUMP,
                    f"K=1 {by_k[1]:.2f}% -> K=2 {by_k[2]:.2f}% (+{jump:.2f})",
                )
            )
    dense = _dense(rows)
    greedy = _slot_series(rows, "selection").get("greedy", {})
    large = {k: v for k, v in greedy.items() if k >= 8}
    if dense is not None and large:
        gap = min(dense - v for v in large.values())
        worst = max(dense - v for v in large.values())
        found.append(
            Finding(
                FINDINGS["plateau"],
                worst <= PLATEAU_GAP,
                f"GS at K>=8 from {dense - worst:.2f}% to {dense - gap:.2f}%; "
                f"weight-trained {dense:.2f}%",
            )
        )
    return found


def selection_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """GS above PS at every K >= 2 that both ran."""
    series = _slot_series(rows, "selection")
    gs, ps = series.get("greedy", {}), series.get("probabilistic", {})
    ks = sorted(k for k in set(gs) & set(ps) if k >= 2)
    if not ks:
        return []
    gaps = ", ".join(f"K={k} {gs[k] - ps[k]:+.2f}" for k in ks)
    return [Finding(FINDINGS["gs_above_ps"], all(gs[k] > ps[k] for k in ks), f"GS - PS: {gaps}")]


def conv6_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """CONV-6 at K=8 (GS) above its weight-trained network."""
    conv6 = [r for r in rows if r.settings.get("arch") == "conv6"]
    gs8 = _slot_series(conv6, "selection").get("greedy", {}).get(8)
    dense = _dense(conv6)
    if gs8 is None or dense is None:
        return []
    return [
        Finding(FINDINGS["conv6_beats_dense"], gs8 > dense, f"K=8 {gs8:.2f}% against {dense:.2f}%")
    ]


def sharing_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Sharing's cost (none minus shared) at the smallest K >= 2 against the largest K."""
    series = _slot_series(rows, "sharing", sharing=None)
    alone = series.get("none", {})
    found = []
    for mode in ("layer", "global"):
        shared = series.get(mode, {})
        ks = sorted(k for k in set(alone) & set(shared) if k >= 2)
        if len(ks) < 2:
            continue
        small, large = alone[ks[0]] - shared[ks[0]], alone[ks[-1]] - shared[ks[-1]]
        found.append(
            Finding(
                f"{FINDINGS['sharing']} ({mode})",
                small > large and large <= SMALL_COST,
                f"cost at K={ks[0]}: {small:+.2f} points, at K={ks[-1]}: {large:+.2f} points",
            )
        )
    return found


def finetune_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Each finetuned split against weight training alone for the same total epochs."""
    dense = {
        int(r.settings["epochs"]): accuracy(r)
        for r in rows
        if r.settings.get("method") == "dense" and accuracy(r) is not None
    }
    pairs = []
    for row in rows:
        s = row.settings
        tuned = percent(row, "finetune_test_accuracy")
        if s.get("method") != "slot" or tuned is None:
            continue
        total = int(s["epochs"]) + int(s["finetune_epochs"])
        if total in dense:
            pairs.append((f"{s['epochs']}+{s['finetune_epochs']}", tuned[0], dense[total]))
    if not pairs:
        return []
    wins = sum(tuned > alone for _, tuned, alone in pairs)
    detail = ", ".join(f"{split}: {tuned:.2f} vs {alone:.2f}" for split, tuned, alone in pairs)
    return [
        Finding(
            FINDINGS["finetune"],
            wins == len(pairs),
            f"finetuned above weight training alone in {wins} of {len(pairs)} splits ({detail})",
        )
    ]


def storage_findings(rows: list[ConfigurationRow]) -> list[Finding]:
    """Not the paper's: edge-popup against the slot machine of the same storage (K=2, 1 bit)."""
    popup = [
        (r.settings.get("keep_fraction", "?"), accuracy(r))
        for r in rows
        if r.settings.get("method") == "edge_popup" and accuracy(r) is not None
    ]
    slot2 = _slot_series(rows, "method").get("slot", {}).get(2)
    if not popup or slot2 is None:
        return []
    best = max(popup, key=lambda item: item[1])
    detail = ", ".join(f"keep {keep}: {value:.2f}%" for keep, value in popup)
    return [
        Finding(
            "edge-popup (1-bit mask) against the slot machine of equal storage (K=2)",
            None,
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
            None,
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
