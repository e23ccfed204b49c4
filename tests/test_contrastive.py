"""Contrastive targets: "why this code and not that?" (``attribute(..., contrast=...)``).

The likelihood methods' contrastive scores are checked against a naive loop (one unbatched forward
per prompt with the full logits, ``log p(code | x_i) - log p(contrast | x_i)``), the contrastive
CODING gradients against plain autograd on the full model; a contrast of the code itself scores
zero everywhere, no contrast changes nothing, and every bad input is one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from reference import naive_logprob

from codefocus import attribute
from codefocus.api import contrast_for, reference_contrast
from codefocus.errors import InvalidArgumentError
from codefocus.methods.likelihood import CompletionScorer
from codefocus.methods.setup import WordTemplate

PROMPT = "Write a function that returns the largest even number in a list of numbers."
CODE = "    evens = [n for n in numbers if n % 2 == 0]\n    return max(evens)\n"
CONTRAST = "    return sorted(numbers)[-1]\n"
DELETE = {"loo_mode": "delete"}


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def model(request, tiny_model_factory):
    return tiny_model_factory(request.param, seed=3)


def tokens(model, text: str) -> list[int]:
    return list(model.tokenizer(text, add_special_tokens=False)["input_ids"])


def naive_loo(model, result, code: str, contrast: str | None) -> np.ndarray:
    """Leave each word out (deleted); the target per prompt, one plain forward each."""
    template = WordTemplate(PROMPT, list(result.words))
    prompts = [PROMPT, *(template.without(i) for i in range(len(result.words)))]

    def target(text: str) -> float:
        own = naive_logprob(model, text, tokens(model, code))
        return own - (naive_logprob(model, text, tokens(model, contrast)) if contrast else 0.0)

    values = np.array([target(p) for p in prompts])
    return values[0] - values[1:]


def run(model, methods: str, **kwargs):
    kwargs.setdefault("completion", CODE)
    kwargs.setdefault("method_options", DELETE)
    return attribute(model, PROMPT, methods, scope="prompt", cache=None, **kwargs)


def test_contrastive_loo_logprob_equals_a_naive_loop(model):
    result = run(model, "loo_logprob", contrast=CONTRAST)
    expected = naive_loo(model, result, CODE, CONTRAST)
    np.testing.assert_allclose(result.word_scores["loo_logprob"], expected, rtol=1e-5, atol=1e-5)
    assert result.settings["contrast"] == {"source": "given", "text": CONTRAST}
    assert not result.failures
    # the contrast changes the target: the plain scores are not these
    plain = naive_loo(model, result, CODE, None)
    assert not np.allclose(plain, expected)


def test_no_contrast_changes_nothing(model):
    default = run(model, "loo_logprob,saliency_coding")
    none = run(model, "loo_logprob,saliency_coding", contrast=None)
    assert none.word_scores == default.word_scores
    assert none.token_scores == default.token_scores
    assert none.statement_word_scores == default.statement_word_scores
    assert "contrast" not in none.settings
    assert none.settings == default.settings
    expected = naive_loo(model, none, CODE, None)
    np.testing.assert_allclose(none.word_scores["loo_logprob"], expected, rtol=1e-5, atol=1e-5)


def test_the_code_itself_as_contrast_scores_zero(model):
    methods = "loo_logprob,contextcite,saliency_coding,inputxgradient_coding"
    options = {**DELETE, "contextcite_target": "logprob"}  # the published target takes none
    given = run(model, methods, contrast=CODE, method_options=options)
    # the model's own generation (its generated ids) contrasted with its own text
    generated = attribute(model, PROMPT, "loo_logprob", scope="prompt", cache=None)
    itself = attribute(
        model,
        PROMPT,
        methods,
        scope="prompt",
        cache=None,
        contrast=generated.generated,
        method_options=options,
    )
    for result in (given, itself):
        assert not result.failures
        for name in methods.split(","):
            assert np.all(np.asarray(result.word_scores[name]) == 0.0), name


def naive_contrastive_gradients(model, code: str, contrast: str) -> tuple[np.ndarray, np.ndarray]:
    """Autograd on the full model: D = log p(code) - log p(contrast), both teacher-forced from
    the same prompt embeddings; saliency ||dD/de_j|| normalised, input×gradient e_j · dD/de_j."""
    net = model.model
    embed = net.get_input_embeddings()
    prompt_ids = tokens(model, PROMPT)
    prompt = embed(torch.tensor([prompt_ids])).detach().requires_grad_(True)

    def logprob(ids: list[int]):
        rest = embed(torch.tensor([ids[:-1]])).detach()
        logits = net(inputs_embeds=torch.cat([prompt, rest], 1)).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        return sum(logp[len(prompt_ids) - 1 + j, t] for j, t in enumerate(ids))

    difference = logprob(tokens(model, code)) - logprob(tokens(model, contrast))
    (grad,) = torch.autograd.grad(difference, prompt)
    grad = grad[0].double()
    saliency = grad.norm(dim=-1).numpy()
    return saliency / saliency.sum(), (grad * prompt[0].detach().double()).sum(-1).numpy()


def test_contrastive_gradients_equal_plain_autograd(model):
    result = run(model, "saliency_coding,inputxgradient_coding", contrast=CONTRAST)
    saliency, input_x_gradient = naive_contrastive_gradients(model, CODE, CONTRAST)
    assert len(result.tokens) == len(saliency)  # a prompt of its own: every token is scored
    np.testing.assert_allclose(
        result.token_scores["saliency_coding"], saliency, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        result.token_scores["inputxgradient_coding"], input_x_gradient, rtol=1e-4, atol=1e-5
    )
    assert min(input_x_gradient) < 0 < max(input_x_gradient)  # signed: both directions
    assert "saliency_coding" not in result.statement_word_scores  # one target, no statements


def test_methods_that_take_no_contrast_fail_one_line_each(model):
    refused = ["reading_first", "saliency_reading", "integrated_gradients_reading", "occlusion"]
    refused.append("contextcite")  # its published target: the logit of a probability
    result = run(model, ",".join(["loo_logprob", *refused]), contrast=CONTRAST)
    assert sorted(result.failures) == sorted(refused)
    for name, why in result.failures.items():
        assert why.startswith(f"{name} cannot take a contrast") and "\n" not in why
    assert set(result.word_scores) == {"loo_logprob"}
    # the study's released CODING gradients (the last token's alone) have no contrastive form
    one = run(model, "loo_logprob,saliency_coding", contrast=CONTRAST, protocol="kou2024")
    assert one.failures["saliency_coding"].startswith(
        "saliency_coding with coding_steps='one' cannot take a contrast"
    )
    from codefocus.methods import MethodInputs
    from codefocus.methods.context import AttributionContext
    from codefocus.methods.gradient import Gradient

    context = AttributionContext(model, PROMPT, CODE, contrast=CONTRAST)
    with pytest.raises(InvalidArgumentError, match="coding_steps='one' cannot take a contrast"):
        Gradient("saliency_coding", stage="coding", coding_steps="one").compute(
            MethodInputs(context)
        )


def test_the_reference_contrast_of_a_humaneval_task(tiny_model_factory, data_dir):
    from codefocus.data.tasks import get_task

    model = tiny_model_factory("qwen2", seed=3)
    task = get_task("humaneval/0", data_dir)
    result = attribute(
        model,
        task,
        "loo_logprob,inputxgradient_coding,reading_all",
        completion=CODE,
        contrast="reference",
        method_options=DELETE,
        cache=None,
    )
    assert result.settings["contrast"] == {
        "source": "reference",
        "text": task.reference_solution,
    }
    assert list(result.failures) == ["reading_all"]
    scores = np.asarray(result.word_scores["loo_logprob"])
    assert len(scores) == len(result.words) and np.isfinite(scores).all() and scores.any()
    # the same target by hand for one word: log p(code) - log p(reference), with and without it
    template = WordTemplate(task.prompt, list(result.words))
    code, reference = tokens(model, CODE), tokens(model, task.reference_solution)

    def target(text: str) -> float:
        return naive_logprob(model, text, code) - naive_logprob(model, text, reference)

    expected = target(task.prompt) - target(template.without(3))
    assert scores[3] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    restored = type(result).from_json(result.to_json())
    assert restored.settings["contrast"] == result.settings["contrast"]


def test_an_mbpp_task_is_contrasted_with_its_reference_body(tiny_model_factory, data_dir):
    from codefocus.data.tasks import get_task

    task = get_task("mbpp/12", data_dir)
    result = attribute(
        tiny_model_factory("gpt2", seed=3),
        task,
        "loo_logprob",
        completion="\n    return sorted(M)\n",
        contrast="reference",
        method_options=DELETE,
        cache=None,
    )
    body = "\n    result = sorted(M, key=sum)\n    return result"
    assert result.model_input.endswith("def function():")
    assert result.settings["contrast"] == {"source": "reference", "text": body}
    assert np.isfinite(result.word_scores["loo_logprob"]).all() and not result.failures


def test_the_reference_contrast_of_mbpp_is_the_body_after_the_header(data_dir):
    from codefocus.data.tasks import get_task

    task = get_task("mbpp/12", data_dir)  # def sort_matrix(M):\n    result = sorted(...)
    header = "\ndef function():"
    body = reference_contrast(task, header)
    assert body == "\n    result = sorted(M, key=sum)\n    return result"
    compile("def function():" + body, "mbpp", "exec")  # reads on from the model input
    with_import = get_task("mbpp/13", data_dir)  # from collections import Counter\ndef ...
    assert reference_contrast(with_import, header).startswith("\n  word_counts = Counter(")
    # no header after the prompt: the reference as it is
    assert reference_contrast(task, "") == task.reference_solution
    assert contrast_for(task, header, "reference").text == body


@pytest.mark.parametrize(
    "contrast,message",
    [
        ("reference", "contrast='reference' needs a benchmark task"),
        ("", "the contrast is empty"),
        ("   \n", "the contrast is empty"),
        (b"code", "contrast must be 'reference' or code text"),
    ],
)
def test_bad_contrasts_are_one_line(tiny_model_factory, contrast, message):
    with pytest.raises(InvalidArgumentError) as error:
        attribute(tiny_model_factory("qwen2"), PROMPT, "loo_logprob", contrast=contrast)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_contrast_no_chosen_method_takes_fails_before_the_model_runs():
    with pytest.raises(InvalidArgumentError) as error:  # a model name: never loaded
        attribute("no-such-model", PROMPT, "reading_first,occlusion", contrast=CONTRAST)
    assert "reading_first, occlusion cannot take a contrast: only " in str(error.value)
    assert "loo_logprob" in str(error.value) and "\n" not in str(error.value)


def test_a_model_behind_an_endpoint_scores_the_contrast_as_it_does_the_code():
    class Endpoint:
        name = "endpoint"

        def completion_logprobs(self, texts, code):
            return [-(len(t) + 3.0 * len(code)) for t in texts]

    scorer = CompletionScorer(Endpoint(), "abc", suffix="!", contrast="abcdef")
    assert list(scorer(["x", "yy"])) == [9.0, 9.0]  # -(2 + 9) + (2 + 18)
    plain = CompletionScorer(Endpoint(), "abc", suffix="!")
    assert list(plain(["x"])) == [-11.0]


def _main(argv, capsys):
    from codefocus.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--contrast", "reference"], "--contrast reference needs --task"),
        (["--contrast", "/no/such/file.py"], "--contrast: no file"),
        (["--contrast", "EMPTY"], "holds no code"),
        (["--contrast", "CODE", "--methods", "reading_first"], "--contrast: reading_first"),
    ],
)
def test_bad_contrast_on_the_command_line(tmp_path, capsys, extra, message):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(PROMPT)
    (tmp_path / "empty.py").write_text(" \n")
    (tmp_path / "code.py").write_text(CONTRAST)
    paths = {"EMPTY": str(tmp_path / "empty.py"), "CODE": str(tmp_path / "code.py")}
    extra = [paths.get(a, a) for a in extra]
    argv = ["attribute", "--model", "tiny", "--prompt-file", str(prompt), "--methods"]
    argv += ["loo_logprob", *extra]
    status, _, err = _main(argv, capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_contrast_on_the_command_line(tmp_path, capsys, monkeypatch, source):
    import io

    prompt = tmp_path / "prompt.txt"
    prompt.write_text(PROMPT)
    code = tmp_path / "code.py"
    code.write_text(CONTRAST)
    if source == "stdin":
        monkeypatch.setattr("sys.stdin", io.StringIO(CONTRAST))
    out = tmp_path / "result.json"
    argv = ["attribute", "--model", "tiny", "--prompt-file", str(prompt), "--max-new-tokens"]
    argv += ["4", "--methods", "loo_logprob", "--no-cache", "--format", "json", "--out", str(out)]
    argv += ["--contrast", str(code) if source == "file" else "-"]
    status, _, err = _main(argv, capsys)
    assert status == 0, err
    assert json.loads(out.read_text())["settings"]["contrast"] == {
        "source": "given",
        "text": CONTRAST,
    }


def test_the_explorer_shows_a_contrast_on_a_diverging_scale(model):
    from codefocus.reports.explorer import NEGATIVE_SCALE, SCALE, explorer_data, top_by_size

    result = run(model, "loo_logprob,inputxgradient_coding", contrast=CONTRAST)
    data = explorer_data(result, result.methods, 5)
    assert data["diverging"] and data["negative"] == NEGATIVE_SCALE
    scores = result.word_scores["inputxgradient_coding"]
    assert data["methods"]["inputxgradient_coding"]["top"] == top_by_size(scores, 5)
    assert top_by_size([0.5, -2.0, 0.0, 1.0], 3) == [1, 3, 0]
    assert top_by_size([0.0, 0.0], 2) == []
    page = result.to_html(k=5, reference="    return 0\n")
    assert "toward the contrast" in page and "toward the generated code" in page
    assert "contrast: given code" in page and "cfx-contrast" in page
    assert "cfx-ref" in page  # a reference that is not the contrast keeps its own column
    assert "cfx-ref" not in result.to_html(k=5, reference=CONTRAST)  # shown once
    assert all(c in page for c in SCALE + NEGATIVE_SCALE)
    plain = run(model, "loo_logprob").to_html(k=5)
    assert "diverging colour scale" not in plain and "cfx-contrast" not in plain


@pytest.mark.browser
def test_the_explorer_page_diverges(browser, tmp_path, tiny_model_factory):
    from codefocus.reports.explorer import NEGATIVE_SCALE, SCALE, top_by_size

    model = tiny_model_factory("qwen2", seed=3)
    result = run(model, "loo_logprob,inputxgradient_coding", contrast=CONTRAST)
    path = tmp_path / "contrast.html"
    path.write_text(result.to_html(k=5), encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    assert CONTRAST.strip() in page.inner_text(".cfx-contrast")
    for method in ("loo_logprob", "inputxgradient_coding"):
        page.select_option("select", method)
        scores = result.word_scores[method]
        lit = page.eval_on_selector_all(
            ".w.on", "e => e.map(x => [+x.dataset.w, getComputedStyle(x).backgroundColor])"
        )
        assert sorted(i for i, _ in lit) == sorted(top_by_size(scores, 5))
        for index, colour in lit:
            side = SCALE if scores[index] > 0 else NEGATIVE_SCALE
            assert colour in [_rgb(c) for c in side], (method, index, colour)
        assert "toward the contrast" in page.inner_text(".cfx-status")
    assert errors == []
    page.close()


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_a_contrastive_attribution_ranks_by_size_everywhere(model):
    # the top K, the alignment and the terminal listing read |score|: a word that pushed hard
    # toward the contrast matters as much as one that pushed toward the model's own code
    from dataclasses import replace

    from codefocus.data.benchmarks import LabelledSpan
    from codefocus.reports.terminal import plain_attribution

    result = run(model, "loo_logprob", contrast=CONTRAST)
    scores = result.scores("loo_logprob")
    assert min(scores) < 0 < max(scores)  # both directions occur
    sizes = [abs(v) for v in scores]
    k = 3
    by_size = sorted(np.argsort([-v for v in sizes], kind="stable")[:k].tolist())
    assert [result.words.index(w) for w in result.top_k("loo_logprob", k)] == by_size
    # the most negative word: first by size, nowhere near first by raw score
    lowest = int(np.argmin(scores))
    word = result.words[lowest]
    labels = [LabelledSpan(word.start, word.end, "Condition", word.text)]
    labelled = replace(result, human_spans=labels)
    assert list(labelled.prompt_units("loo_logprob").scores) == sizes
    at = sorted(sizes, reverse=True).index(sizes[lowest]) + 1  # its rank by size
    found = labelled.alignment(ks=[at])["loo_logprob"][0]
    assert found.recall == 1.0
    listing = plain_attribution(result, ["loo_logprob"], k)
    assert "|score|" in listing
    first = int(np.argmax(sizes))
    assert f"loo_logprob top {k}: {result.words[first].text} {scores[first]:.4g}" in listing
    # the HTML page's table and marks: by size, red toward the contrast
    from codefocus.reports.explorer import NEGATIVE_SCALE
    from codefocus.reports.html import method_marks, ranked_words

    assert sorted(ranked_words(result, "loo_logprob", k)) == by_size
    marks = {
        (start, end): colour for start, end, colour, _ in method_marks(result, "loo_logprob", k)
    }
    for index in by_size:
        word = result.words[index]
        assert (marks[(word.start, word.end)] in NEGATIVE_SCALE) == (scores[index] < 0)
    # without a contrast, the raw scores rank as before
    plain = run(model, "loo_logprob")
    assert plain.ranking("loo_logprob") == plain.scores("loo_logprob")
    # two targets do not merge into one attribution
    with pytest.raises(InvalidArgumentError, match="different targets"):
        plain.merge(result)


def test_faithfulness_refuses_a_contrastive_attribution(model, tmp_path):
    from test_cli import run as command

    result = run(model, "loo_logprob", contrast=CONTRAST)
    with pytest.raises(InvalidArgumentError, match="contrastive attribution") as error:
        result.faithfulness(model)
    assert "\n" not in str(error.value)
    # on the command line: one line, exit 2, before any model loads (none named exists)
    path = result.save(tmp_path / "contrastive.json")
    done = command("faithfulness", "--attribution", str(path), "--model", "no-such-model")
    assert done.returncode == 2 and "contrastive attribution" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
