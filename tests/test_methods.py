"""White-box methods on tiny random models, cross-checked against independent computations:
captum for the gradients, ``output_attentions`` for the attention sums."""

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

from codefocus.api import attribute
from codefocus.attribution import Attribution
from codefocus.errors import UnknownNameError
from codefocus.methods import MethodInputs, resolve_methods
from codefocus.methods.context import AttributionContext
from codefocus.models.hf import ContextTooLongError

PROMPT = 'def add(a, b):\n    """ Return the sum of a and b.\n    """\n'
COMPLETION = "    result = a + b\n    return result\n"


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def model(request, tiny_model_factory):
    return tiny_model_factory(request.param, layers=3)


@pytest.fixture(scope="module")
def context(model):
    return AttributionContext(model, PROMPT, COMPLETION, gradient_chunk=5)


def _relative(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


def _captum_step_vectors(model, context, attribution_cls):
    """One forward + backward per generated token on its own prefix, through captum."""
    net = model.model
    ids = context.prompt_ids + context.completion_ids
    embed = net.get_input_embeddings()
    rows = []
    for step, target in enumerate(context.completion_ids):
        prefix = torch.tensor([ids[: context.P + step]])
        inputs = embed(prefix).detach()

        def forward(x, target=target):
            return net(inputs_embeds=x).logits[:, -1, target]

        method = attribution_cls(forward)
        kwargs = {"abs": True} if attribution_cls is Saliency else {}
        grads = method.attribute(inputs, **kwargs)[0]
        vector = grads.detach().norm(dim=-1).double().numpy()[: context.P]
        rows.append(vector / vector.sum())  # normalised over the scored (here: all) prompt tokens
    return np.array(rows)


@pytest.mark.parametrize("which,cls", [(0, Saliency), (1, InputXGradient)])
def test_gradients_match_captum(model, context, which, cls):
    ours = context.gradients()[which]
    reference = _captum_step_vectors(model, context, cls)
    assert ours.shape == reference.shape == (context.G, context.P)
    assert _relative(ours, reference) <= 1e-4


def test_integrated_gradients_match_captum(model, context):
    net = model.model
    target = context.completion_ids[0]
    inputs = net.get_input_embeddings()(torch.tensor([context.prompt_ids])).detach()

    def forward(x):
        return net(inputs_embeds=x).logits[:, -1, target]

    reference = (
        IntegratedGradients(forward)
        .attribute(
            inputs, baselines=torch.zeros_like(inputs), n_steps=20, method="riemann_trapezoid"
        )[0]
        .detach()
        .sum(-1)
        .abs()
        .double()
        .numpy()
    )
    reference = reference / reference.sum()
    assert _relative(context.integrated_gradients(20), reference) <= 1e-4


@pytest.mark.parametrize("exclude_sink", [True, False])
def test_attention_sums_match_output_attentions(model, exclude_sink):
    context = AttributionContext(model, PROMPT, COMPLETION, exclude_sink=exclude_sink)
    ids = torch.tensor([context.prompt_ids + context.completion_ids])
    with torch.no_grad():
        attentions = model.model(ids, output_attentions=True).attentions
    per_layer = [a[0].sum(0)[:, : context.P].numpy() for a in attentions]
    P, S = context.P, context.P + context.G
    # CODING reads the queries that produced the generated tokens: positions P-1 .. S-2
    expected = {
        "reading_first": per_layer[0][:P].sum(0),
        "reading_last": per_layer[-1][:P].sum(0),
        "reading_all": sum(per_layer)[:P].sum(0),
        "coding_first": per_layer[0][P - 1 : S - 1].sum(0),
        "coding_last": per_layer[-1][P - 1 : S - 1].sum(0),
        "coding_all": sum(per_layer)[P - 1 : S - 1].sum(0),
        "compat_reading_all": attentions[0][0].sum(0)[P, :P].numpy(),
        "compat_coding_first": attentions[0][0][0, -1, :P].numpy(),
        "compat_reading_last": attentions[0][0][-1, P, :P].numpy(),
    }
    for method in resolve_methods(list(expected)):
        scores = method.compute(MethodInputs(context)).scores
        want = expected[method.name].copy()
        if exclude_sink:  # the first position is an attention sink: not scored
            want[0] = 0.0
        np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-7)


def test_attention_and_gradient_rows_belong_to_the_same_generated_tokens(model):
    """Row s of both per-step matrices is the step that produced generated token s: on the
    model's own greedy code, the logits at the attention row's query position predict token s,
    and the gradient row is that logit's gradient (so both maps give a statement the same
    tokens)."""
    (generation,) = model.generate([PROMPT], max_new_tokens=12)
    context = AttributionContext(
        model, PROMPT, generation.completion, completion_ids=generation.token_ids
    )
    ids = torch.tensor([context.prompt_ids + context.completion_ids])
    with torch.no_grad():
        output = model.model(ids, output_attentions=True)
    (coding,) = resolve_methods("coding_last")
    (saliency,) = resolve_methods("saliency_coding")
    attention_rows = coding.compute(MethodInputs(context)).per_step
    gradient_rows = saliency.compute(MethodInputs(context)).per_step
    assert attention_rows.shape == gradient_rows.shape == (context.G, context.P)
    last = output.attentions[-1][0].sum(0)[:, : context.P].numpy()
    for s, token in enumerate(context.completion_ids):
        position = context.P - 1 + s
        assert int(output.logits[0, position].argmax()) == token  # this query writes token s
        want = last[position].copy()
        want[0] = 0.0
        np.testing.assert_allclose(attention_rows[s], want, rtol=1e-5, atol=1e-7)


def test_reading_and_coding_relations(context):
    saliency = context.gradients()[0]
    methods = {m.name: m for m in resolve_methods("saliency_reading,saliency_coding")}
    np.testing.assert_allclose(
        methods["saliency_reading"].compute(MethodInputs(context)).scores, saliency[0]
    )
    coding = methods["saliency_coding"].compute(MethodInputs(context))
    np.testing.assert_allclose(coding.scores, saliency.sum(0))
    assert coding.per_step.shape == (context.G, context.P)
    # each step's vector sums to 1 over its inputs, so the prompt part sums to at most 1
    assert np.all(saliency.sum(1) <= 1 + 1e-9) and np.isclose(saliency[0].sum(), 1.0)


def test_attribute_end_to_end_and_json_round_trip(model, tmp_path):
    result = attribute(model, PROMPT, "all-whitebox", completion=COMPLETION)
    assert not result.failures
    assert set(result.word_scores) == {
        "reading_first",
        "reading_last",
        "reading_all",
        "coding_first",
        "coding_last",
        "coding_all",
        "saliency_reading",
        "saliency_coding",
        "inputxgradient_reading",
        "inputxgradient_coding",
    }
    words = [w.text for w in result.words]
    assert words[:4] == ["def", "add", "a", "b"]
    for scores in result.word_scores.values():
        assert len(scores) == len(words) and np.all(np.isfinite(scores))
    # word -> statement map: one row per generated statement, rows sum to the coding scores
    assert [s.text.strip() for s in result.statements] == ["result = a + b", "return result"]
    rows = np.array(result.statement_word_scores["saliency_coding"])
    assert rows.shape == (2, len(words))
    top = result.top_k("reading_all", 3)
    assert len(top) == 3 and all(isinstance(w.text, str) for w in top)
    path = tmp_path / "a.json"
    result.save(path)
    again = Attribution.load(path)
    assert again.to_dict() == result.to_dict()


def test_deterministic(model):
    first = attribute(model, PROMPT, "reading_all,saliency_coding", completion=COMPLETION)
    second = attribute(model, PROMPT, "reading_all,saliency_coding", completion=COMPLETION)
    assert first.word_scores == second.word_scores


def test_bad_inputs(model):
    with pytest.raises(UnknownNameError, match="unknown method 'nope'"):
        attribute(model, PROMPT, "nope", completion=COMPLETION)
    with pytest.raises(ContextTooLongError, match="exceeds the context"):
        attribute(model, "word " * 600, "reading_all", completion=COMPLETION)


def test_generation_runs_and_is_cut_at_function_end(model):
    generations = model.generate([PROMPT, "Write a function."], max_new_tokens=8)
    assert len(generations) == 2
    for generation in generations:
        lines = generation.completion.split("\n")
        assert all(not line or line[0].isspace() for line in lines[1:])


def test_first_step_shortcut_equals_full_computation(model):
    fresh = AttributionContext(model, PROMPT, COMPLETION)
    first = fresh.first_step_gradients()
    full = AttributionContext(model, PROMPT, COMPLETION).gradients()
    for which in (0, 1):
        np.testing.assert_allclose(first[which][0], full[which][0], rtol=1e-6, atol=1e-9)


def test_all_six_attention_methods_share_one_forward(model):
    context = AttributionContext(model, PROMPT, COMPLETION)
    calls = []
    handle = model.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        for method in resolve_methods("attention"):
            method.compute(MethodInputs(context))
    finally:
        handle.remove()
    assert len(calls) == 1
