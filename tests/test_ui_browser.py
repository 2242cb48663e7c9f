"""The UI as a user meets it: `slotsweep ui`'s printed links in headless Chromium."""

from __future__ import annotations

import re
import shutil
import textwrap

import pytest
from helpers import run_cli, ui_server, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
GENAI_OVERVIEW = ("Token Usage", "Tokens per Trace", "Cost Breakdown")


def _as_js_number(value: float) -> str:
    """How the page prints a metric: JavaScript's shortest round-trip form (1 not 1.0)."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _study(tmp_path):
    path = tmp_path / "uicheck.yaml"
    path.write_text(
        textwrap.dedent("""
        name: uicheck
        trial: {arch: lenet_300_100, dataset: synthetic, method: slot, epochs: 1,
                train_subset: 256}
        space:
          k: {grid: [2, 8]}
        seeds: [0]
        baselines:
          - {method: dense, lr: 0.01}
        max_concurrent: 2
    """)
    )
    return path


@pytest.mark.slow
def test_the_printed_links_open_on_the_trials_and_their_comparison(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it as root)")
    from mlflow.tracking import MlflowClient

    study = _study(tmp_path)
    launched = run_cli("launch", str(study), "--num-cpus", "2", cwd=tmp_path)
    assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("uicheck")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    trials = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get("slotsweep.role") == "trial"
    ]
    assert len(trials) == 3
    with ui_server(study, tmp_path) as url:
        printed = (tmp_path / "ui.out").read_text()
        runs_link = re.search(r"^trials:\s+(\S+)", printed, re.M).group(1)
        compare_link = re.search(r"^compare:\s+(\S+)", printed, re.M).group(1)
        assert runs_link.startswith(url) and "compare-runs" in compare_link
        assert all(run.info.run_id in compare_link for run in trials)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # wide enough that the grid renders every column (it draws only visible ones)
            page = browser.new_page(viewport={"width": 3600, "height": 1200})
            page.set_default_timeout(180_000)  # MLflow's bundles on a loaded 2-core machine

            def runs_page(text: str) -> None:
                assert "/runs" in page.url and "overview" not in page.url
                assert f"{len(trials)} matching runs" in text  # the trials, not the parent
                for header in ("k", "log2_k", "test_accuracy", "training_memory_bytes"):
                    assert re.search(rf"^{header}$", text, re.M), header
                for run in trials:
                    assert _as_js_number(run.data.metrics["test_accuracy"]) in text

            def compare_page(text: str) -> None:
                assert f"Comparing {len(trials)} Runs" in text
                assert "Parallel Coordinates Plot" in text
                # its axes start on the first differing params: the varied key and its log2
                assert "Parameters:" in text and "Metrics:" in text
                axes = text.split("Parameters:", 1)[1].split("Metrics:", 1)[0]
                assert re.search(r"^k$", axes, re.M) and re.search(r"^log2_k$", axes, re.M)
                # (its metrics table draws only the rows in view: test accuracy is checked above)

            runs_text = _visit(page, runs_link, trials, runs_page, tmp_path / "runs.png")
            compare_text = _visit(
                page, compare_link, trials, compare_page, tmp_path / "compare.png"
            )
            for text in (runs_text, compare_text):
                assert not any(marker in text for marker in GENAI_OVERVIEW)
            browser.close()


def _visit(page, link: str, trials, check, screenshot) -> str:
    """Opens a link and returns the page's text once every trial's name is drawn and
    `check(text)` passes: the page draws its cells as its scripts get to them, so the checks are
    retried until they pass, for at most 180 s (a loaded 2-core machine)."""
    page.goto(link)
    failed: list[AssertionError] = []

    def drawn() -> str | None:
        text = page.inner_text("body")
        try:
            for run in trials:
                assert run.info.run_name in text, run.info.run_name
            check(text)
        except AssertionError as error:
            failed[:] = [error]
            return None
        return text

    try:
        return wait_until(drawn, timeout=180, what=f"{link} drawn", every=1)
    except pytest.fail.Exception:
        pytest.fail(f"{link}: not drawn as expected within 180 s; last check: {failed[-1]!r}")
    finally:
        page.screenshot(path=str(screenshot))
