"""The paper's numbers as data: test accuracies of Aladago & Torresani (ICML 2021), its settings.

Two kinds of number: those the text states (exact to the digits given) and those read off the
paper's figure 2 (approximate; the read-off is good to about +-0.1 points). Each carries its
source and precision, so a report can say how close a result must come to count as a match.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT, FIGURE = "text", "figure 2 (read-off)"
CHANCE = 10.0  # ten classes: a network that never learned


@dataclass(frozen=True)
class PaperNumber:
    """One test accuracy (in %) of the paper, for one architecture, method, selection and K."""

    arch: str
    dataset: str
    method: str  # slot | dense
    selection: str | None  # greedy | probabilistic, None for dense
    k: int | None  # None for dense
    value: float
    precision: float  # +- points: half the last digit given, or the read-off's uncertainty
    source: str  # TEXT or FIGURE
    note: str = ""


@dataclass(frozen=True)
class PaperSettings:
    """What the paper trains one architecture with (the settings a report checks a run against)."""

    dataset: str
    slot_epochs: int
    baseline_epochs: int
    schedule: str = "warm_restarts"  # SGD with restarts at epochs 25 and 75
    val_fraction: float = 0.15


SETTINGS: dict[str, PaperSettings] = {
    "lenet_300_100": PaperSettings("mnist", 200, 200),
    "conv2": PaperSettings("cifar10", 200, 200, val_fraction=0.1),
    "conv4": PaperSettings("cifar10", 200, 330, val_fraction=0.1),
    "conv6": PaperSettings("cifar10", 200, 330, val_fraction=0.1),
    "vgg19": PaperSettings("cifar10", 220, 320, val_fraction=0.1),
}

EDGE_POPUP_EPOCHS = 100  # Ramanujan et al. (2020), cosine schedule, lr 0.1

# Figure 2, read off: K = 2, 4, 8, 16, 32, 64, then the weight-trained network (None: not shown).
_KS = (2, 4, 8, 16, 32, 64)
_FIGURE_2 = {
    ("lenet_300_100", "greedy"): ((97.1, 98.0, 98.2, 98.2, 98.2, 98.2), 98.0),
    ("lenet_300_100", "probabilistic"): ((97.1, 97.8, 97.8, 97.9, 98.0, 97.8), None),
    ("conv2", "greedy"): ((75.2, 77.8, 78.1, 78.2, 77.7, 77.5), 79.3),
    ("conv2", "probabilistic"): ((70.1, 70.5, 71.6, 71.7, 71.0, 70.9), None),
    ("conv4", "greedy"): ((81.8, 85.7, 86.0, 86.3, 86.3, 85.1), 86.5),
    ("conv4", "probabilistic"): ((78.9, 80.2, 79.5, 79.2, 79.4, 79.4), None),
    ("conv6", "greedy"): ((85.3, 87.9, 88.4, 88.2, 88.1, 87.7), 88.0),
    ("conv6", "probabilistic"): ((81.7, 81.6, 81.2, 80.7, 80.9, 80.5), None),
}
READ_OFF_PRECISION = 0.1


def _figure_numbers() -> list[PaperNumber]:
    numbers = []
    for (arch, selection), (values, baseline) in _FIGURE_2.items():
        dataset = SETTINGS[arch].dataset
        numbers += [
            PaperNumber(arch, dataset, "slot", selection, k, value, READ_OFF_PRECISION, FIGURE)
            for k, value in zip(_KS, values, strict=True)
        ]
        if baseline is not None:
            numbers.append(
                PaperNumber(
                    arch,
                    dataset,
                    "dense",
                    None,
                    None,
                    baseline,
                    READ_OFF_PRECISION,
                    FIGURE,
                    "weight-trained network",
                )
            )
    return numbers


def _text_numbers() -> list[PaperNumber]:
    numbers = [
        PaperNumber("lenet_300_100", "mnist", "slot", "greedy", 2, 97.0, 0.05, TEXT),
        PaperNumber("lenet_300_100", "mnist", "slot", "greedy", 8, 98.2, 0.05, TEXT),
        PaperNumber(
            "vgg19", "cifar10", "slot", "greedy", 8, 91.0, 0.5, TEXT, "90 in the arXiv preprint"
        ),
    ]
    # "K=1 is chance": one value per connection leaves nothing to choose, so nothing is learned
    for arch, settings in SETTINGS.items():
        numbers += [
            PaperNumber(
                arch,
                settings.dataset,
                "slot",
                selection,
                1,
                CHANCE,
                1.0,
                TEXT,
                "chance (about 10%)",
            )
            for selection in ("greedy", "probabilistic")
        ]
    return numbers


NUMBERS: tuple[PaperNumber, ...] = tuple(_text_numbers() + _figure_numbers())


def paper_number(
    arch: str, method: str, selection: str | None = None, k: int | None = None
) -> PaperNumber | None:
    """The paper's test accuracy for this point: the text's where it states one, else figure 2's."""
    if method != "slot":
        selection, k = None, None
    matches = [
        n for n in NUMBERS if (n.arch, n.method, n.selection, n.k) == (arch, method, selection, k)
    ]
    return min(matches, key=lambda n: n.source != TEXT, default=None)


# The paper's qualitative findings, as a report states them next to whether they held here.
FINDINGS = {
    "k1_chance": "K=1 trains to chance (about 10%)",
    "k2_jump": "a large jump from K=1 to K=2",
    "plateau": "from K=8 on, within about a point of the weight-trained network",
    "gs_above_ps": "greedy selection (GS) above probabilistic (PS) at every K >= 2",
    "conv6_beats_dense": "CONV-6 at K=8 beats its weight-trained network",
    "sharing": "sharing the values costs accuracy at small K and little at large K",
    "finetune": "a slot machine then weight training beats weight training alone at equal cost",
}
