"""One self-contained HTML page of a report: figures embedded, the tables, the findings, the
study's settings and the software that produced it, to attach to a paper or a review."""

from __future__ import annotations

import base64
import datetime
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from slotsweep.analysis import COSTS, METHOD, ConfigurationRow, varying_settings
from slotsweep.report.extras import Extras
from slotsweep.report.figures import Figure
from slotsweep.report.findings import Finding
from slotsweep.report.paper import PaperPoint, label_keys, row_label, signed
from slotsweep.report.tables import SHOWN, interval_cell, mean_std_cell, objective_cell, seeds_cell

PACKAGES = ("slotsweep", "torch", "ray", "optuna", "mlflow", "numpy", "matplotlib", "pydantic")

TEMPLATE = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.text { text-align: left; }
.within { color: #1a7f37; } .above, .below { color: #b35900; }
.held { color: #1a7f37; } .not-held { color: #b3261e; } .inconclusive { color: #666; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 520px; }
</style></head><body>
<h1>{{ title }}</h1>
{% if description %}<p>{{ description }}</p>{% endif %}
<p>{{ trials }} trial runs ({{ finished }} finished, {{ failed }} failed{% if stopped %}, {{ stopped
}} stopped before they finished{% endif %}). Data set:
<b>{{ datasets }}</b>. Generated {{ generated }}.</p>
{% for note in dataset_notes %}<p class="note">{{ note }}</p>{% endfor %}
{{ search_html }}
{% if findings %}<h2>The paper's findings, here</h2>
<p>Each comparison of two configurations is decided on their per-seed differences of test
accuracy (points): the mean difference and its 95% {{ method }} [low, high]. <i>held</i>: the
interval lies on the claimed side of the claim's threshold; <i>did not hold</i>: on the other
side; <i>inconclusive</i>: it crosses the threshold, or one seed only.</p><ul>
{% for f in findings %}<li><span class="{{ f.verdict|replace(' ', '-')|replace('did-not-hold',
 'not-held') }}">{{ f.verdict }}</span>: {{ f.claim }}. {{ f.evidence }}</li>{% endfor %}</ul>
{% endif %}
<h2>Figures</h2>
{% for fig in figures %}{{ figure(fig) }}{% endfor %}
<h2>Ours beside the paper</h2>
{% if points %}<p>Verdict: <i>within</i> when our 95% interval over seeds lies inside the
paper's value &plusmn; the tolerance (the paper number's precision plus {{ tolerance }}
point(s)); <i>above</i> or <i>below</i> when the whole interval lies beyond it; otherwise, or
with one seed, <i>inconclusive</i>. Marks name the paper settings a point departs
from (its scale, its data set). The distance of a slot machine to the weight-trained network of
the same run, beside the paper's, compares the two across a change of data set or scale.</p>
<table><tr><th>configuration</th><th>ours % [95%]</th><th>paper %</th><th>difference</th>
<th>tolerance</th><th>verdict</th><th>ours &minus; our baseline</th>
<th>paper &minus; paper's baseline</th><th>paper's source</th><th>marks</th></tr>
{% for p in points %}<tr><td class="text">{{ p.label }}</td>
<td>{{ p.ours_text }}</td>
<td>{{ '%.1f'|format(p.paper.value) }} &plusmn; {{ p.paper.precision }}</td>
<td>{{ '%+.2f'|format(p.difference) }}</td><td>{{ '%.2f'|format(p.tolerance) }}</td>
<td class="{{ p.verdict }}">{{ p.verdict }}</td>
<td>{{ signed(p.ours_vs_baseline) }}</td><td>{{ signed(p.paper_vs_baseline) }}</td>
<td class="text">{{ p.paper.source }}{% if p.paper.note %} ({{ p.paper.note }}){% endif %}</td>
<td class="text">{{ p.marks|join('; ') }}</td></tr>{% endfor %}</table>
{% else %}<p>The paper reports no number for these configurations.</p>{% endif %}
<h2>Every configuration (mean &plusmn; std over seeds)</h2>
<p>test acc % [95%]: the mean and its 95% {{ method }} over the configuration's finished
trials; "(one seed)" where there is no interval.</p>
<table><tr>{% for h in config_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for line in config_rows %}<tr>{% for cell in line %}<td{% if loop.index <= n_keys %}
 class="text"{% endif %}>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{{ extras_html }}
<h2>Study settings</h2><pre>{{ settings }}</pre>
<h2>Software</h2><table>{% for name, version in versions %}<tr><td class="text">{{ name }}
</td><td class="text">{{ version }}</td></tr>{% endfor %}</table>
</body></html>
""",
    autoescape=True,
)

EXTRAS = jinja2.Template(
    """{% if fronts %}<h2>Pareto fronts</h2><p>Test accuracy (mean over seeds, higher is better)
against each cost (mean over seeds, lower is better): a configuration is on a front when no other
is at least as accurate and at most as costly, and better in one (pareto.csv: every
configuration, its objectives, <code>front_*</code>).</p>
<ul>{% for cost, names in fronts %}<li>{{ cost }}: {{ names|join(', ') }}</li>{% endfor %}</ul>
{% for fig in front_figures %}{{ figure(fig) }}{% endfor %}{% endif %}
<h2>Importance</h2><p>{{ importance_note }}{% if importance %} (Optuna's importance evaluators
on the finished trials; importance.csv){% endif %}.</p>
{% if importance %}<table><tr><th>setting</th><th>importance</th><th>evaluator</th></tr>
{% for i in importance %}<tr><td class="text">{{ i.setting }}</td><td>{{ '%.3f'|format(
 i.importance) }}</td><td class="text">{{ i.evaluator }}</td></tr>{% endfor %}</table>
{% for fig in importance_figures %}{{ figure(fig) }}{% endfor %}{% endif %}
{% if curve_figures %}<h2>Learning curves</h2>{% if curves_note %}<p>Drawn: {{ curves_note }}
(learning_curves.csv holds these; a search's every configuration is in comparison.csv).</p>
{% endif %}{% for fig in curve_figures %}{{ figure(fig) }}
{% endfor %}{% endif %}""",
    autoescape=True,
)
SEARCH = jinja2.Template(
    """<h2>The search's result: its Pareto front</h2><p>The configurations no other beats in
every objective at once ({{ objectives }}; means over seeds, 95% intervals in brackets);
pareto_search.csv lists every configuration.</p>
<table><tr><th>configuration</th><th>seeds</th>{% for m in metrics %}<th>{{ m }}</th>
{% endfor %}</tr>{% for line in lines %}<tr><td class="text">{{ line[0] }}</td>{% for cell in
 line[1:] %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% for fig in figs %}{{ figure(fig) }}{% endfor %}""",
    autoescape=True,
)
FIGURE = jinja2.Template(
    """<figure><img alt="{{ fig.title }}" src="data:image/png;base64,{{ fig.data }}">
<figcaption>{{ fig.title }} ({{ fig.name }}.png; values in {{ fig.csv }})</figcaption>
</figure>""",
    autoescape=True,
)


def software_versions() -> list[tuple[str, str]]:
    """Python, the platform and the versions of the packages behind a result."""
    versions = [("python", platform.python_version()), ("platform", platform.platform())]
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return versions


def _embedded(figure: Figure) -> Markup:
    data = base64.b64encode(Path(figure.png).read_bytes()).decode("ascii")
    csv_name = Path(figure.csv).name if figure.csv else f"{figure.name}.csv"
    fig = {"name": figure.name, "title": figure.title, "data": data, "csv": csv_name}
    return Markup(FIGURE.render(fig=fig))


def _search_html(extras: Extras | None, rows: list[ConfigurationRow]) -> Markup:
    """A multi-objective search's front, shown first: its result."""
    if extras is None or not extras.search_objectives:
        return Markup("")
    labels, metrics = label_keys(rows), [m for m, _ in extras.search_objectives]
    lines = [
        [row_label(row, labels), seeds_cell(row), *(objective_cell(row, m) for m in metrics)]
        for row in extras.search_front
    ]
    objectives = ", ".join(f"{m} ({mode})" for m, mode in extras.search_objectives)
    figs = [f for f in extras.figures if f.name == "pareto_search"]
    return Markup(
        SEARCH.render(
            objectives=objectives, metrics=metrics, lines=lines, figs=figs, figure=_embedded
        )
    )


def _extras_html(extras: Extras | None, rows: list[ConfigurationRow]) -> Markup:
    """The sections of the Pareto fronts, importance and learning curves."""
    if extras is None:
        return Markup("")
    labels = label_keys(rows)
    fronts = [
        (cost, [row_label(p.row, labels) for p in extras.fronts if p.on_front[cost]])
        for cost in COSTS
        if any(p.on_front[cost] for p in extras.fronts)
    ]

    def named(prefix: str) -> list[Figure]:
        return [
            f for f in extras.figures if f.name.startswith(prefix) and f.name != "pareto_search"
        ]

    return Markup(
        EXTRAS.render(
            fronts=fronts,
            front_figures=named("pareto_"),
            importance=extras.importance,
            importance_note=extras.importance_note,
            importance_figures=named("importance"),
            curve_figures=named("learning_curves"),
            curves_note=extras.curves_note,
            figure=_embedded,
        )
    )


def _configuration_table(rows: list[ConfigurationRow]) -> tuple[list[str], list[list[str]]]:
    keys = varying_settings(rows)
    shown = [m for m in SHOWN if any(row.mean(m) is not None for row in rows)]
    header = keys + ["seeds", "test acc % [95%]"] + [SHOWN[m][0] for m in shown]
    lines = [
        [row.settings.get(k, "-") for k in keys]
        + [seeds_cell(row), interval_cell(row)]
        + [mean_std_cell(row, m) for m in shown]
        for row in rows
    ]
    return header, lines


def write_html(
    path: Path,
    *,
    title: str,
    rows: list[ConfigurationRow],
    figures: list[Figure],
    points: list[PaperPoint],
    findings: list[Finding],
    settings: dict[str, Any],
    dataset_notes: list[str],
    datasets: str,
    description: str = "",
    tolerance: float = 1.0,
    extras: Extras | None = None,
) -> None:
    """Writes the report page to `path`."""
    header, lines = _configuration_table(rows)
    page = TEMPLATE.render(
        title=title,
        description=description,
        trials=sum(r.finished + r.failed + r.stopped for r in rows),
        finished=sum(r.finished for r in rows),
        failed=sum(r.failed for r in rows),
        stopped=sum(r.stopped for r in rows),
        datasets=datasets,
        dataset_notes=dataset_notes,
        findings=findings,
        figures=figures,
        figure=_embedded,
        method=METHOD,
        extras_html=_extras_html(extras, rows),
        search_html=_search_html(extras, rows),
        points=points,
        tolerance=f"{tolerance:g}",
        config_header=header,
        config_rows=lines,
        signed=signed,
        n_keys=len(varying_settings(rows)),
        settings=json.dumps(settings, indent=1, default=str),
        versions=software_versions(),
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    path.write_text(page, encoding="utf-8")
