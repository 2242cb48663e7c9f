"""The documents: a short README, links that resolve, and tables equal to what the code generates.

README.md says what slotsweep is and how to run it in at most 12 KB; docs/ holds the rest. Every
relative link and `#anchor` in README.md and docs/*.md resolves, and every table between
`<!-- generated: NAME -->` and `<!-- end generated -->` is what `slotsweep.report.reference`
generates now (`python -m slotsweep.report.reference --write` rewrites them).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from slotsweep.report import reference

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DOC_FILES = [README, *DOCS]
README_LIMIT = 12 * 1024

SETUP_AND_LAUNCH = "scripts/setup.sh && .venv/bin/slotsweep launch studies/k_scan.yaml"
SETUP_AND_TEST = "scripts/setup.sh && .venv/bin/python -m pytest -q"

# Where each generated table stands: a block removed from its document fails too.
PLACES = {
    "study-file.md": {"trial_keys"},
    "mlflow.md": {"metrics"},
    "development.md": {"vocabulary"},
    "settings.md": {"recipes", "training_defaults", "datasets"},
    "paper-results.md": {"archs", "paper_settings", "paper_text", "paper_figure", "paper_findings"},
}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """`text` without fenced code blocks and inline code, where a bracket is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*_~]{2,}|[`*~]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a markdown text; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(FENCE.sub("", text)):
        base = slug(match[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    """The targets of every inline link (not image) in a markdown text, outside code."""
    return [match[1] for match in LINK.finditer(_prose(text))]


def link_problems(path: Path, text: str) -> list[str]:
    """Each relative link of `text` (the file at `path`) that names no file or no heading."""
    problems = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_file():
            problems.append(f"{path.name}: {target}: no file {file_part}")
            continue
        if anchor and anchor not in anchors(linked.read_text()):
            problems.append(f"{path.name}: {target}: no heading #{anchor} in {linked.name}")
    return problems


def stale_blocks(text: str) -> list[str]:
    """The generated blocks of `text` that differ from what the code generates now (or have no
    generator)."""
    return [
        name
        for name, body in reference.blocks_in(text)
        if name not in reference.GENERATORS or body != reference.GENERATORS[name]()
    ]


def _section(text: str, heading: str) -> str:
    """The body of the `## heading...` section of a markdown text, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match[1]


# --- the README ---


def test_readme_is_at_most_12_kb():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_readme_quick_start_shows_the_two_commands():
    section = _section(README.read_text(), "Quick start")
    block = re.search(r"^```bash\n(.*?)^```", section, re.M | re.S)
    assert block, "the quick start has no bash block"
    commands = [line.split("#")[0].strip() for line in block[1].splitlines() if line.strip()]
    assert commands == [SETUP_AND_LAUNCH, SETUP_AND_TEST]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup.sh" in ci
    assert SETUP_AND_TEST.split(" && ")[1] in ci


def test_readme_names_every_command_and_exit_code():
    text = README.read_text()
    commands = _section(text, "Commands and exit codes")
    for command in ("launch", "validate", "train", "report", "ui", "evaluate"):
        assert f"| `slotsweep {command}" in commands, command
    for code in ("**0**", "**1**", "**2**"):
        assert code in commands
    assert "sqlite:///mlflow.db" in text and "slotsweep ui" in text and "slotsweep report" in text


def test_readme_module_map_names_every_package_and_module():
    section = _section(README.read_text(), "Module map")
    package = ROOT / "slotsweep"
    for path in sorted(package.iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            assert f"{path.name}/" in section, path.name
        elif path.suffix == ".py" and not path.name.startswith("__"):
            assert path.name in section, path.name
    assert "only `slotsweep/launch/` imports Ray" in section
    assert "only\n`slotsweep/tracking/` imports MLflow" in section or (
        "only `slotsweep/tracking/` imports MLflow" in section.replace("\n", " ")
    )


def _imports(path: Path) -> set[str]:
    """The top-level packages a module imports at run time (anywhere in it, lazily too; not
    under `if TYPE_CHECKING:`)."""

    def walk(node: ast.AST):
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                yield from (n for stmt in child.orelse for n in [stmt, *walk(stmt)])
                continue
            yield child
            yield from walk(child)

    names = set()
    for node in walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


# --- links ---


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    assert link_problems(path, path.read_text()) == []


def test_readme_links_into_docs():
    targets = {target.partition("#")[0] for target in links(README.read_text())}
    for doc in ("study-file", "mlflow", "cluster", "results", "development", "README"):
        assert f"docs/{doc}.md" in targets, doc


def test_docs_index_links_every_document():
    targets = {target.partition("#")[0] for target in links((ROOT / "docs/README.md").read_text())}
    assert {path.name for path in DOCS} - {"README.md"} <= targets


def test_named_study_files_exist():
    for path in DOC_FILES:
        for study in re.findall(r"studies/[\w/]+\.yaml", path.read_text()):
            assert (ROOT / study).is_file(), f"{path.name}: {study}"


def test_the_link_check_finds_broken_links(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# A title\n\n## The parent run: the study's summary\n")
    text = (
        "[ok](a.md) [ok](#a-title) [ok](a.md#the-parent-run-the-studys-summary) "
        "[web](https://example.org/x) `[code](nowhere.md)`\n"
        "[missing](b.md) [bad anchor](a.md#no-such-heading) [bad local](#nope)\n"
        "```\n[in a fence](gone.md)\n```\n"
    )
    assert link_problems(doc, text) == [
        "a.md: b.md: no file b.md",
        "a.md: a.md#no-such-heading: no heading #no-such-heading in a.md",
        "a.md: #nope: no heading #nope in a.md",
    ]


def test_slugs_are_githubs():
    assert slug("The study in MLflow's UI") == "the-study-in-mlflows-ui"
    assert slug("Python layers (`slotsweep.nn`)") == "python-layers-slotsweepnn"
    assert slug("k_scan, the main job (2026-11-22, 2 cores)") == (
        "k_scan-the-main-job-2026-11-22-2-cores"
    )
    assert anchors("# Results\n## Results\n") == {"results", "results-1"}


# --- generated tables ---


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_blocks_equal_the_code(path):
    stale = stale_blocks(path.read_text())
    assert stale == [], (
        f"{path.name}: blocks {stale} differ from the code; "
        "run python -m slotsweep.report.reference --write"
    )


def test_every_generated_table_stands_where_expected():
    placed = {
        path.name: {name for name, _ in reference.blocks_in(path.read_text())} for path in DOCS
    }
    for name, expected in PLACES.items():
        assert expected <= placed.get(name, set()), name
    assert set().union(*placed.values()) == set(reference.GENERATORS)
    assert reference.blocks_in(README.read_text()) == []  # the README stays short: tables in docs/


def test_the_block_check_fails_on_a_changed_number():
    settings = (ROOT / "docs" / "settings.md").read_text()
    assert stale_blocks(settings) == []
    row = "| PS learning rate | 25 | 50 |"
    assert row in settings
    assert stale_blocks(settings.replace(row, "| PS learning rate | 50 | 50 |")) == ["recipes"]
    figure = (ROOT / "docs" / "paper-results.md").read_text()
    assert stale_blocks(figure.replace("| 97.1 | 98.0 |", "| 97.1 | 98.1 |", 1)) == ["paper_figure"]
    unknown = "<!-- generated: nothing_like_it -->\n\nx\n\n<!-- end generated -->\n"
    assert stale_blocks(unknown) == ["nothing_like_it"]


def test_write_mode_restores_a_changed_block(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n")
    doc = tmp_path / "docs" / "settings.md"
    good = (ROOT / "docs" / "settings.md").read_text()
    doc.write_text(good.replace("| PS learning rate | 25 |", "| PS learning rate | 50 |"))
    assert reference.main(["--check", "--root", str(tmp_path)]) == 1
    assert reference.main(["--write", "--root", str(tmp_path)]) == 0
    assert doc.read_text() == good
    assert reference.main(["--check", "--root", str(tmp_path)]) == 0


def test_the_tables_follow_the_code():
    """The generated tables read the code: the paper recipe's PS rate, the paper's epochs."""
    from slotsweep import registry
    from slotsweep.report import paper_numbers

    paper = registry.RECIPES.get("paper")
    assert f"| PS learning rate | {paper.lr_probabilistic:g} |" in reference.recipe_table()
    vgg = paper_numbers.SETTINGS["vgg19"]
    assert f"| `vgg19` | `cifar10` | {vgg.slot_epochs} | {vgg.baseline_epochs} |" in (
        reference.paper_settings_table()
    )
    assert "| `conv2` | 0.5 | `cifar10` | 3,317,952 |" in reference.arch_table()
