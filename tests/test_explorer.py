"""The explorer and the report pages, in headless Chromium (Playwright) and without a browser.

The browser tests drive the real page: hovering a statement must light exactly the top-K words of
that statement's row in the attribution's JSON; clicking a word must light exactly the statements
where it ranks in the top K; nothing is fetched; hostile text in prompt and code stays text.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pytest

from codefocus.attribution import Attribution
from codefocus.metrics.alignment import top_k_indices

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CODE = (
    "    whole = int(number)\n"
    "    if whole > number:\n"
    "        whole -= 1\n"
    "    return number - whole  # " + HOSTILE + "\n"
)
METHODS = "reading_all,saliency_coding,coding_all,occlusion"
K = 5


@pytest.fixture(scope="module")
def labelled(data_dir) -> Attribution:
    """A labelled HumanEval task on the tiny model, with a fixed four-statement completion."""
    from codefocus import attribute, get_task

    task = get_task("humaneval/2", data_dir)
    return attribute("tiny", task, METHODS, completion=CODE, cache=None)


@pytest.fixture(scope="module")
def hostile() -> Attribution:
    """A prompt that carries script and markup of its own."""
    from codefocus import attribute

    prompt = f'def f(number):\n    """Return the {HOSTILE} part of the number."""\n'
    return attribute("tiny", prompt, "reading_all,saliency_coding", completion=CODE, cache=None)


class Page:
    """A page with its requests and script errors recorded."""

    def __init__(self, browser, tmp_path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.shots = Path(os.environ.get("CODEFOCUS_ARTIFACTS", tmp_path))
        self.shots.mkdir(parents=True, exist_ok=True)

    def lit_words(self) -> list[int]:
        return sorted(
            int(x) for x in self.page.eval_on_selector_all(".w.on", "e => e.map(x => x.dataset.w)")
        )

    def lit_statements(self) -> list[int]:
        return sorted(
            int(x) for x in self.page.eval_on_selector_all(".s.on", "e => e.map(x => x.dataset.s)")
        )

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.page.evaluate("window.__pwned === undefined")
        assert all(u.startswith(("file://", "about:", "data:")) for u in self.requests)


def _page_file(tmp_path: Path, attribution: Attribution, **kwargs) -> Path:
    path = tmp_path / "attribution.html"
    path.write_text(attribution.to_html(k=K, **kwargs), encoding="utf-8")
    return path


def test_hovering_a_statement_lights_its_top_words(browser, tmp_path, labelled):
    stored = json.loads(labelled.to_json())  # what a user has: the JSON, not the page's data
    page = Page(browser, tmp_path)
    page.page.goto(_page_file(tmp_path, labelled, reference="    return 1.0\n").as_uri())
    checked = 0
    for method, rows in stored["statement_word_scores"].items():
        page.page.select_option("select", method)
        for j, row in enumerate(rows):
            page.page.hover(f".s[data-s='{j}']")
            expected = sorted(int(i) for i in top_k_indices(row, K))
            if max(row) == min(row):
                expected = []  # no attribution: nothing is lit, the status says so
                assert "no attribution" in page.page.inner_text(".cfx-status")
            assert page.lit_words() == expected, (method, j)
            assert page.lit_statements() == [j]
            checked += 1
    assert checked == 2 * 4  # two per-statement methods, four statements
    # the numeric score is on the word, for hover and for screen readers
    first = page.page.locator(".w.on").first
    index = int(first.get_attribute("data-w"))
    method = list(stored["statement_word_scores"])[-1]
    row = stored["statement_word_scores"][method][3]
    assert float(first.get_attribute("data-score")) == pytest.approx(row[index])
    assert method in first.get_attribute("title")
    page.page.screenshot(path=str(page.shots / "explorer-statement.png"), full_page=True)
    page.check_clean()


def test_clicking_a_word_lights_the_statements_it_drove(browser, tmp_path, labelled):
    stored = json.loads(labelled.to_json())
    page = Page(browser, tmp_path)
    page.page.goto(_page_file(tmp_path, labelled).as_uri())
    method = "coding_all"
    rows = stored["statement_word_scores"][method]
    page.page.select_option("select", method)
    tops = [set(int(i) for i in top_k_indices(r, K)) for r in rows]
    some_hit = False
    for word in range(len(stored["words"])):
        page.page.click(f".w[data-w='{word}']")
        page.page.mouse.move(1, 1)  # off every statement: the pinned word decides
        expected = [j for j, top in enumerate(tops) if word in top]
        assert page.lit_statements() == expected, word
        some_hit |= bool(expected)
        page.page.click(f".w[data-w='{word}']")  # unpin
    assert some_hit
    page.check_clean()


def test_perturbation_methods_show_their_word_scores(browser, tmp_path, labelled):
    from dataclasses import replace

    n = len(labelled.words)
    varied = [float((7 * i) % 11) for i in range(n)]
    for scores, expected in (
        (varied, sorted(int(i) for i in top_k_indices(varied, K))),
        ([0.0] * n, []),  # all equal: no attribution, nothing lit
    ):
        attribution = replace(labelled, word_scores={**labelled.word_scores, "occlusion": scores})
        page = Page(browser, tmp_path)
        page.page.goto(_page_file(tmp_path, attribution).as_uri())
        page.page.select_option("select", "occlusion")
        page.page.hover(".s[data-s='0']")
        status = page.page.inner_text(".cfx-status")
        assert page.lit_words() == expected
        assert "scores words only" in status
        assert ("no attribution" in status) == (not expected)
        page.check_clean()


def test_keyboard_and_label_overlay(browser, tmp_path, labelled):
    stored = json.loads(labelled.to_json())
    page = Page(browser, tmp_path)
    page.page.goto(_page_file(tmp_path, labelled).as_uri())
    page.page.select_option("select", "saliency_coding")
    page.page.focus(".s[data-s='1']")
    row = stored["statement_word_scores"]["saliency_coding"][1]
    assert page.lit_words() == sorted(int(i) for i in top_k_indices(row, K))
    page.page.keyboard.press("Enter")  # pins the statement
    page.page.focus(".w[data-w='0']")  # leaving the statement keeps the pinned one
    assert page.lit_statements() == [1]
    page.page.keyboard.press("Escape")
    assert page.lit_statements() == []
    # labels: words overlapping a programmer label carry its category and are underlined on demand
    labelled_words = page.page.locator(".w[data-cat]")
    assert labelled_words.count() >= 1
    before = labelled_words.first.evaluate("e => getComputedStyle(e).textDecorationLine")
    page.page.check("input.cfx-labels")
    after = labelled_words.first.evaluate("e => getComputedStyle(e).textDecorationLine")
    assert before == "none" and after == "underline"
    page.page.screenshot(path=str(page.shots / "explorer-labels.png"), full_page=True)
    page.check_clean()


def test_hostile_prompt_and_code_stay_text(browser, tmp_path, hostile):
    path = _page_file(tmp_path, hostile, reference=HOSTILE, verdict="failed: " + HOSTILE)
    text = path.read_text()
    assert HOSTILE not in text
    assert html.escape(HOSTILE) in text
    page = Page(browser, tmp_path)
    page.page.goto(path.as_uri())
    assert HOSTILE in page.page.inner_text(".cfx-prompt")  # shown as the text it is
    assert HOSTILE in page.page.inner_text(".cfx-code")
    page.page.hover(".s[data-s='0']")
    page.check_clean()


def test_the_notebook_repr_runs_in_a_page(browser, tmp_path, labelled):
    fragment = labelled._repr_html_()
    second = labelled._repr_html_()  # two explorers on one page (two notebook cells) both work
    page = Page(browser, tmp_path)
    page.page.set_content(f"<html><body>{fragment}{second}</body></html>")
    explorers = page.page.locator(".cfx")
    assert explorers.count() == 2
    stored = json.loads(labelled.to_json())
    row = stored["statement_word_scores"]["saliency_coding"][2]
    for n in range(2):
        root = explorers.nth(n)
        root.locator("select").select_option("saliency_coding")
        root.locator(".s[data-s='2']").hover()
        lit = sorted(
            int(x) for x in root.locator(".w.on").evaluate_all("e => e.map(x => x.dataset.w)")
        )
        assert lit == sorted(int(i) for i in top_k_indices(row, 10))
    page.check_clean()


# ---- without a browser ---------------------------------------------------------------------
def test_repr_is_short(labelled):
    text = repr(labelled)
    assert len(text) < 300 and labelled.prompt[:40] not in text
    assert "HumanEval/2" in text and "coding_all" in text and "statements=4" in text


def test_the_page_shows_scores_and_alignment(labelled):
    page = labelled.to_html(k=K)
    assert "<table class='alignment'>" in page and "precision" in page
    results = labelled.alignment([K])
    assert f"{results['reading_all'][0].f1:.3f}" in page
    # every method's top words with their scores
    scores = labelled.word_scores["reading_all"]
    best = int(top_k_indices(scores, 1)[0])
    assert f"{scores[best]:.4g}" in page


def test_all_equal_scores_say_no_attribution(labelled):
    from dataclasses import replace

    flat = replace(
        labelled, word_scores={**labelled.word_scores, "occlusion": [0.0] * len(labelled.words)}
    )
    page = flat.to_html(methods=["occlusion"], k=K)
    assert "no attribution" in page
    from codefocus.reports.html import method_marks

    assert method_marks(flat, "occlusion", K) == []


def test_embedded_json_cannot_close_its_script():
    from codefocus.reports.explorer import _json_for_script

    text = _json_for_script({"m</script><script>alert(1)</script>": [1.0]})
    assert "</script" not in text and "<" not in text
    assert json.loads(text) == {"m</script><script>alert(1)</script>": [1.0]}


def test_charts_are_matplotlib_svg_without_script():
    from codefocus.reports.charts import bar_chart, diverging_likert, line_chart

    lines = line_chart("F1 vs K", [5, 10, 20], {"a": [0.1, 0.2, 0.3], "b": [0.1, 0.2, 0.3]}, "F1")
    assert lines.startswith("<svg") and "<script" not in lines
    assert 'id="series-0"' in lines and 'id="series-1"' in lines
    assert 'id="figure_1"' in lines and 'id="axes_1"' in lines  # drawn by matplotlib
    assert "<metadata>" not in lines
    bars = bar_chart("alpha", {"x": 0.2, "y": float("nan")}, "alpha")
    assert 'id="bar-0"' in bars and "–" in bars and "nan" not in bars
    likert = diverging_likert("Q1", {"A": [1, 0, 0, 1, 0, 0, 2]}, [str(i) for i in range(1, 8)])
    assert likert.count("<svg") == 1


@pytest.mark.slow
def test_attribute_html_shows_the_reference_and_the_verdict(tmp_path, data_dir):
    from test_cli import run

    out = tmp_path / "a.html"
    result = run(
        "attribute",
        "--model",
        "tiny",
        "--task",
        "humaneval/2",
        "--methods",
        "reading_all",
        "--format",
        "html",
        "--out",
        str(out),
        "--max-new-tokens",
        "8",
        env_data=data_dir,
    )
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert "reference solution" in page and "return number % 1.0" in page
    # the tiny random model's code fails HumanEval/2's tests in the sandbox
    assert "<span class='verdict'>failed" in page
