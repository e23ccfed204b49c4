"""The packaged default model (Qwen2.5-Coder-0.5B-Instruct), end to end. Slow: marked."""

import numpy as np
import pytest
import torch
from captum.attr import Saliency

from codefocus.api import attribute
from codefocus.data.tasks import get_task
from codefocus.methods.context import AttributionContext
from codefocus.models.loading import load_model
from codefocus.models.packaged import model_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model():
    return load_model("default")


def test_default_model_is_cached_as_safetensors(model):
    converted = model_dir() / "safetensors"
    assert (converted / "config.json").is_file()
    assert model.num_layers == 24 and model.context_length >= 32768


def test_default_model_writes_the_study_solution_and_attributes(model, data_dir):
    task = get_task("humaneval/0", data_dir)
    result = attribute(model, task, "reading_all,coding_last,saliency_reading")
    assert not result.failures
    assert "for" in result.generated and "threshold" in result.generated
    assert "return" in result.generated
    for method in result.methods:
        assert len(result.top_k(method, 10)) == 10
    assert result.human_spans and result.alignment([10])
    # the study's scope: no import line, no doctest examples; exactly the generated tokens
    words = [w.text for w in result.words]
    assert "from" not in words and words[:2] == ["def", "has_close_elements"]
    assert result.settings["scope"] == "study"
    assert result.settings["scored_tokens"] == "generated ids"
    for rows in result.statement_word_scores.values():
        assert len(rows) == len(result.statements)


def test_default_model_keeps_a_prefix_of_its_generated_tokens(model, data_dir):
    from codefocus.generation.records import GenerationSettings
    from codefocus.models.base import model_input_for

    for task_id in ("humaneval/0", "humaneval/2", "mbpp/11"):
        text = model_input_for(get_task(task_id, data_dir))
        (cut,) = model.generate([text], max_new_tokens=60)
        (raw,) = model.generate([text], GenerationSettings(stop_at_function_end=False), 60)
        assert list(raw.token_ids)[: len(cut.token_ids)] == list(cut.token_ids)
        assert model.decode(cut.token_ids) == cut.completion
        assert raw.completion.startswith(cut.completion)


def test_saliency_matches_captum_on_the_default_model(model):
    prompt = 'def is_even(n):\n    """Return True if n is even."""\n'
    context = AttributionContext(model, prompt, "    return n % 2 == 0\n")
    ours = context.gradients()[0][:2]
    net = model.model
    ids = context.prompt_ids + context.completion_ids
    embed = net.get_input_embeddings()
    for step in range(2):
        inputs = embed(torch.tensor([ids[: context.P + step]])).detach()
        target = context.completion_ids[step]
        grads = Saliency(lambda x, t=target: net(inputs_embeds=x).logits[:, -1, t]).attribute(
            inputs, abs=True
        )[0]
        vector = grads.detach().norm(dim=-1).double().numpy()[: context.P]
        reference = vector / vector.sum()  # normalised over the scored (all) prompt tokens
        relative = np.abs(ours[step] - reference) / np.maximum(np.abs(reference), 1e-12)
        assert relative.max() <= 1e-4


def test_engine_equals_plain_greedy_on_the_default_model(model, data_dir):
    """Draft verification and early stopping give byte-identical code to plain greedy decoding
    of each perturbed prompt, on real tasks with the study's substitutes."""
    from codefocus.data.units import scoped_word_spans
    from codefocus.generation.draft import DraftVerifier
    from codefocus.generation.records import GenerationSettings
    from codefocus.methods.setup import rebuild
    from codefocus.methods.substitutes import get_provider, substitute_word
    from codefocus.models.base import model_input_for

    provider = get_provider("embedding")
    settings = GenerationSettings()
    verifier = DraftVerifier(model)
    for task_id in ("humaneval/2", "mbpp/17"):
        task = get_task(task_id, data_dir)
        original = model_input_for(task)
        suffix = original[len(task.prompt) :]
        words = scoped_word_spans(task.prompt)[:10]
        inputs = [
            rebuild(task.prompt, words, {i: substitute_word(provider, task.prompt, w)}) + suffix
            for i, w in enumerate(words)
        ]
        # SHAP-like coalitions that drop most words: decoded from their first token on
        every = scoped_word_spans(task.prompt)
        inputs += [
            rebuild(task.prompt, every, {i: "" for i in range(len(every)) if i % 3 != r}) + suffix
            for r in range(2)
        ]
        budget = model.default_max_new_tokens(task.reference_solution)
        fast = verifier.regenerate(inputs, original, budget, settings)
        model.early_stop = False
        try:
            plain = [model.generate([text], settings, budget)[0] for text in inputs]
        finally:
            model.early_stop = True
        assert [g.completion for g in fast] == [g.completion for g in plain]
        assert [g.token_ids for g in fast] == [g.token_ids for g in plain]
    assert verifier.accepted > 0 and verifier.diverged > 0 and verifier.decoded > 0
