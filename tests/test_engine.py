"""The exact greedy engine: stopping at the function's end while decoding, and verifying the
original completion as a draft, must give byte-identical code to plain greedy decoding."""

import pytest

from codefocus.data.units import word_spans
from codefocus.generation.draft import DraftVerifier
from codefocus.generation.records import GenerationSettings
from codefocus.methods.setup import rebuild
from codefocus.models.hf import HFModel
from codefocus.models.tiny import build_chaotic_model

PROMPTS = [
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    "Write a function to find the largest even number in a list.\ndef function():",
    'def is_even(n: int) -> bool:\n    """Check if n is even."""\n',
]


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def model(request):
    """A tiny model with large random weights: unlike the default tiny models, which repeat one
    token, its greedy output varies from prompt to prompt, so drafts diverge at many positions."""
    net, tokenizer = build_chaotic_model(request.param)
    return HFModel(net, tokenizer, f"tiny-{request.param}-chaotic", device="cpu")


def _plain(model, inputs, budget, settings):
    """Plain greedy decoding, one input at a time, to the full budget, cut afterwards."""
    model.early_stop = False
    try:
        return [model.generate([text], settings, max_new_tokens=budget)[0] for text in inputs]
    finally:
        model.early_stop = True


def _perturbations(prompt):
    words = word_spans(prompt)
    deleted = [rebuild(prompt, words, {i: ""}) for i in range(len(words))]
    replaced = [rebuild(prompt, words, {i: "value"}) for i in range(len(words))]
    # SHAP-like coalitions that drop most words: decoded plainly rather than verified
    coalitions = [
        rebuild(prompt, words, {i: "" for i in range(len(words)) if i % 3 != r}) for r in range(3)
    ]
    return deleted + replaced + coalitions


@pytest.mark.slow
@pytest.mark.parametrize("budget", [6, 24])
def test_early_stop_equals_decoding_to_the_budget(model, budget):
    settings = GenerationSettings()
    inputs = [p for prompt in PROMPTS for p in _perturbations(prompt)[:6]]
    fast = model.generate(inputs, settings, max_new_tokens=budget)
    assert fast == _plain(model, inputs, budget, settings)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [True, False])
@pytest.mark.parametrize("step_tokens", [32, 1024])
def test_draft_verification_equals_plain_greedy_on_every_perturbation(model, stop, step_tokens):
    """With the default step size (lookup drafts only in narrow batches) and with room for
    lookup drafts in every step (so they are accepted, rejected, and leave holes to compact)."""
    settings = GenerationSettings(stop_at_function_end=stop)
    budget = 20
    verifier = DraftVerifier(model, batch_size=8, step_tokens=step_tokens)
    for prompt in PROMPTS:
        inputs = _perturbations(prompt) + [prompt]
        engine = verifier.regenerate(inputs, prompt, budget, settings)
        plain = _plain(model, inputs, budget, settings)
        assert [g.completion for g in engine] == [g.completion for g in plain]
        assert [g.token_ids for g in engine] == [g.token_ids for g in plain]
    # both paths ran: drafts accepted whole, and drafts decoded on from a divergence
    assert verifier.accepted > 0 and verifier.diverged > 0, (verifier.accepted, verifier.diverged)
    assert verifier.decoded > 0
    if step_tokens > 32:  # lookup drafts past a divergence were accepted, holes compacted
        assert verifier.looked_up > 0 and verifier.compactions > 0


def test_the_llama_cpp_engine_needs_a_gguf_model():
    import pytest

    from codefocus.api import attribute
    from codefocus.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="GGUF"):
        attribute("tiny", "def f(x):\n    return x\n", "occlusion", engine="llama.cpp")
    with pytest.raises(InvalidArgumentError, match="unknown engine"):
        attribute("tiny", "def f(x):\n    return x\n", "occlusion", engine="vllm")


def test_endpoint_requests_go_out_in_prefix_order():
    """Neighbouring requests share their longest prefixes (a server's prompt cache reuses
    them); each answer still comes back to its own input."""
    from codefocus.models.endpoint import EndpointModel

    seen = []
    model = EndpointModel("http://127.0.0.1:9/v1", "m", concurrency=1)
    model._complete = lambda prompt, limit, settings: seen.append(prompt) or prompt.upper()
    inputs = ["def f(b): pass", "def f(a): pass", "def g(): pass", "def f(a): return"]
    out = model.generate(inputs, max_new_tokens=4)
    assert seen == sorted(inputs)
    assert [g.completion for g in out] == [t.upper() for t in inputs]


@pytest.mark.slow
def test_any_draft_gives_plain_greedy(model):
    """The draft is only a guess: the caller's completion tokens (cut at the function's end),
    a wrong one, or none, the regenerated code is plain greedy's."""
    settings = GenerationSettings()
    budget = 20
    prompt = PROMPTS[0]
    inputs = _perturbations(prompt) + [prompt]
    plain = _plain(model, inputs, budget, settings)
    (original,) = _plain(model, [prompt], budget, settings)
    vocabulary = model.tokenizer.vocab_size
    for draft in (list(original.token_ids), [(t * 7 + 3) % vocabulary for t in range(budget)]):
        verifier = DraftVerifier(model, batch_size=8)
        engine = verifier.regenerate(inputs, prompt, budget, settings, draft=draft)
        assert [g.token_ids for g in engine] == [g.token_ids for g in plain]


@pytest.mark.slow
def test_the_engine_names_the_cache_as_the_installed_transformers_does(model):
    """transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name goes in 5.40):
    the engine's forwards pass the cache under the installed version's name, so they warn of
    nothing and keep working after the old name is gone."""
    import warnings

    settings = GenerationSettings()
    prompt = PROMPTS[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        verifier = DraftVerifier(model, batch_size=4)
        engine = verifier.regenerate(_perturbations(prompt), prompt, 10, settings)
    assert verifier.steps > 0
    assert [g.token_ids for g in engine] == [
        g.token_ids for g in _plain(model, _perturbations(prompt), 10, settings)
    ]


def test_the_original_itself_needs_no_forward(model):
    settings = GenerationSettings()
    prompt = PROMPTS[2]
    (plain,) = _plain(model, [prompt], 12, settings)
    model.raw_ids(prompt, settings, 12)  # the model's own greedy tokens, memoised
    verifier = DraftVerifier(model)
    (engine,) = verifier.regenerate([prompt], prompt, 12, settings)
    assert engine.token_ids == plain.token_ids and verifier.steps == 0


@pytest.mark.slow
def test_methods_regenerate_together_and_score_as_each_alone(model, monkeypatch):
    """``api.attribute`` regenerates every perturbed input of BERT masking and SHAP in one
    engine call (one wide batch); the scores equal each method run on its own."""
    from codefocus.api import attribute
    from codefocus.generation.generator import CachedGenerator
    from codefocus.methods import MethodInputs, resolve_methods
    from codefocus.methods.setup import PerturbationSetup

    calls = []
    regenerate = DraftVerifier.regenerate

    def counted(self, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return regenerate(self, inputs, *args, **kwargs)

    monkeypatch.setattr(DraftVerifier, "regenerate", counted)
    prompt = PROMPTS[1]
    together = attribute(model, prompt, ["bert_masking", "shap"], cache=None)
    assert len(calls) == 1 and calls[0] > len(together.words)
    for name in ("bert_masking", "shap"):
        (method,) = resolve_methods(name)
        setup = PerturbationSetup(
            prompt=prompt,
            suffix="",
            completion=together.generated,
            generator=CachedGenerator(model),
            budget=model.default_max_new_tokens(None),
            settings=GenerationSettings(),
            model=model,
        )
        alone = method.compute(MethodInputs(perturbation=setup)).scores
        assert together.word_scores[name] == alone.tolist(), name
    assert len(calls) > 1  # on its own, each method called the engine itself
