"""Studies: resume after SIGKILL at random moments, Ray equals local, the report in a browser."""

import html
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codefocus.reports.study_report import write_report
from codefocus.studies.executors import run_study
from codefocus.studies.runner import STORE_NAME, StudyConfig
from codefocus.studies.store import StudyStore

ARGS = [
    "--models",
    "tiny",
    "--methods",
    "reading_all,saliency_coding,occlusion",
    "--limit",
    "3",
    "--max-new-tokens",
    "6",
]


def _study(out: Path, data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "CODEFOCUS_DATA": str(data_dir), "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "codefocus.cli", "study", "--out", str(out), *ARGS],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _units(out: Path) -> list[tuple]:
    store = StudyStore(out / STORE_NAME)
    try:
        return [
            (
                r["model"],
                r["task_id"],
                r["kind"],
                r["status"],
                json.dumps(r["payload"], sort_keys=True),
            )
            for r in store.rows()
        ]
    finally:
        store.close()


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, data_dir):
    reference = tmp_path / "reference"
    assert _study(reference, data_dir).wait(timeout=600) == 0
    expected = _units(reference)
    assert len(expected) == 3 * (2 + 3)  # generation, verdict and 3 methods per task

    resumed = tmp_path / "resumed"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        process = _study(resumed, data_dir)
        time.sleep(rng.uniform(2.0, 9.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    assert kills >= 1
    final = _study(resumed, data_dir)
    assert final.wait(timeout=600) == 0, final.stderr.read().decode()[-2000:]
    assert _units(resumed) == expected  # nothing lost, nothing duplicated, same results


@pytest.mark.slow
def test_ray_executor_equals_local(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("CODEFOCUS_DATA", str(data_dir))
    config = StudyConfig(
        models=("tiny",), methods=("reading_all", "occlusion"), limit=2, max_new_tokens=6
    )
    local = run_study(config, tmp_path / "local", "local")
    remote = run_study(config, tmp_path / "ray", "ray")
    assert local.units_failed == remote.units_failed == 0
    assert _units(tmp_path / "local") == _units(tmp_path / "ray")


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.mark.slow
@pytest.mark.browser  # starts Playwright itself
def test_report_renders_offline_and_runs_no_script_from_the_data(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("CODEFOCUS_DATA", str(data_dir))
    out = tmp_path / "study"
    config = StudyConfig(
        models=("tiny",), methods=("reading_all", "saliency_coding"), limit=2, max_new_tokens=6
    )
    run_study(config, out, "local")
    # a model wrote HTML and script into its code: the report must show it as text
    store = StudyStore(out / STORE_NAME)
    generation = store.get("tiny", "HumanEval/0", "generation")
    payload = {**generation["payload"], "completion": "    return 1  # " + HOSTILE + "\n"}
    store.put("tiny", "HumanEval/0", "generation", payload)
    store.put(
        "tiny",
        "HumanEval/0",
        "verdict",
        {"passed": False, "status": "failed", "result": "failed: " + HOSTILE},
    )
    store.close()
    report = write_report(out)
    text = report.read_text()
    assert HOSTILE not in text  # the model's markup is text: the only scripts are the explorer's
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "").replace(
        "http://www.w3.org/1999/xlink", ""
    )
    assert html.escape(HOSTILE, quote=False)[:30] in text
    # the report leads with the study's headline comparison, beside the study's own Table 3
    headline = text[text.index("Headline") : text.index("</table>", text.index("Headline"))]
    assert "saliency_coding" in headline and "reading_all" in headline
    assert headline.count("<td>–</td>") == 0  # both methods have study figures
    assert "scored scope: the study" in text

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        assert page.evaluate("window.__pwned === undefined")
        assert page.locator("table.alignment tr").count() >= 3  # header + 2 methods
        assert page.locator("table.categories").count() >= 1
        assert page.locator("svg.chart g[id^='series-']").count() >= 2  # F1 vs K lines
        assert page.locator("svg.chart g[id^='bar-']").count() >= 2
        assert page.locator("section.task .cfx").count() == 2  # each task opens with the explorer
        # the explorer is live: its first method's top words are lit (this tiny model's code has
        # no statements: the statement interactions are tested in test_explorer.py)
        assert page.locator("section.task .cfx").first.locator(".w.on").count() == 10
        assert page.locator("section.task").count() == 2
        assert page.locator("pre.highlight mark").count() >= 10  # top-10 words per method
        assert page.locator("pre.labels mark").count() >= 1  # programmer labels
        assert "onerror" in page.locator("section.task").first.inner_text()
        shots = Path(os.environ.get("CODEFOCUS_ARTIFACTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert all(url.startswith("file://") for url in requests)


def test_perturbation_methods_on_the_first_tasks_only(tmp_path, data_dir):
    config = StudyConfig(
        models=("tiny",),
        methods=("reading_all", "occlusion"),
        limit=3,
        max_new_tokens=4,
        perturbation_tasks=1,
        data_dir=str(data_dir),
    )
    summary = run_study(config, tmp_path / "s")
    kinds = [
        (task, kind) for _, task, kind, status, _ in _units(tmp_path / "s") if status == "done"
    ]
    assert sum(kind == "method:reading_all" for _, kind in kinds) == 3
    assert [task for task, kind in kinds if kind == "method:occlusion"] == ["HumanEval/0"]
    assert not summary.failures


def test_a_study_refuses_to_mix_scopes(tmp_path, data_dir):
    import pytest

    from codefocus.errors import InvalidArgumentError

    base = dict(
        models=("tiny",),
        methods=("reading_all",),
        limit=1,
        max_new_tokens=4,
        data_dir=str(data_dir),
    )
    run_study(StudyConfig(**base), tmp_path / "s")
    with pytest.raises(InvalidArgumentError, match="scope"):
        run_study(StudyConfig(**base, scope="prompt"), tmp_path / "s")
    run_study(StudyConfig(**{**base, "limit": 2}), tmp_path / "s")  # growing is fine


def test_the_demo_second_view_runs_the_codefocus_protocol_beside(
    tmp_path, monkeypatch, capsys, data_dir
):
    """``demo --second-view N``: after the main study, the ten white-box methods under protocol
    codefocus on N prompts in the study's mix, kept in ``second-view/`` inside the demo's
    folder (which the report then shows)."""
    from codefocus.cli import main
    from codefocus.studies.runner import SECOND_VIEW

    runs = []

    class Summary:
        def line(self):
            return "done"

    def record(config, out, executor="local", **kwargs):
        runs.append((config, Path(out)))
        return Summary()

    monkeypatch.setattr("codefocus.studies.executors.run_study", record)
    monkeypatch.setattr("codefocus.reports.study_report.write_report", lambda out, data: out)
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--out", str(out), "--prompts", "12", "--second-view", "5",
              "--data", str(data_dir)])  # fmt: skip
    assert exit_.value.code in (0, None), capsys.readouterr().err
    (study, study_out), (view, view_out) = runs
    assert study_out == out and view_out == out / SECOND_VIEW
    assert study.declared_protocol().name == "kou2024"
    assert view.declared_protocol().name == "codefocus" and view.methods == ("all-whitebox",)
    assert len(view.task_ids) == 5 and view.verdicts == "none"
    assert sum(t.startswith("HumanEval") for t in view.task_ids) == 1  # the study's mix


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--second-view", "-1"], "--second-view must be 0 or more"),
        (["--prompts", "12", "--second-view", "13"], "--second-view: 13 is more than --prompts 12"),
    ],
)
def test_bad_second_views_are_one_line_errors(tmp_path, capsys, argv, message):
    from codefocus.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--out", str(tmp_path / "d"), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_the_report_shows_a_second_view_labelled_by_its_protocol(tmp_path, data_dir, monkeypatch):
    from codefocus.options import AttributionOptions
    from codefocus.studies.runner import SECOND_VIEW

    monkeypatch.setenv("CODEFOCUS_DATA", str(data_dir))
    out = tmp_path / "demo"
    common = dict(models=("tiny",), methods=("reading_all",), limit=1, max_new_tokens=4)
    common["verdicts"] = "none"
    run_study(StudyConfig(**common, options=AttributionOptions(protocol="kou2024")), out)
    page = write_report(out).read_text(encoding="utf-8")
    assert "Second view" not in page
    # the kou2024 headline puts the printed Table 3 beside the recomputed mean (39.7)
    headline = page[page.index("Headline") : page.index("</table>", page.index("Headline"))]
    assert "printed Table 3" in headline and "<td>39.8</td>" in headline
    second = StudyConfig(**common, options=AttributionOptions(protocol="codefocus"))
    run_study(second, out / SECOND_VIEW)
    page = write_report(out).read_text(encoding="utf-8")
    view = page[page.index("Second view: protocol codefocus") :]
    assert "protocol: codefocus (not comparable with the study" in view[: view.index("</p>")]
    assert "reading_all" in view[: view.index("Why generations fail")]
