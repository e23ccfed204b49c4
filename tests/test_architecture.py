"""The declared seams: model interfaces, the method registry and its options, the one result
format (validated, versioned, select / merge), the JSON mapping, and the package's import
structure."""

import ast
import dataclasses
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import codefocus
from codefocus.attribution import SCHEMA_VERSION, Attribution
from codefocus.data.statements import Statement
from codefocus.data.tasks import LabelledSpan, Task
from codefocus.data.units import Span, word_spans
from codefocus.errors import (
    RECOVERABLE,
    CodefocusError,
    InvalidArgumentError,
    SchemaError,
    UnknownNameError,
)
from codefocus.methods import GROUPS, METHODS, REGISTRY, STUDY_WHITEBOX, resolve_methods
from codefocus.methods.perturbation import WordTemplate, rebuild
from codefocus.models.base import TextGenerator, WhiteBoxModel, is_white_box, offers
from codefocus.models.endpoint import EndpointModel
from codefocus.models.hf import HFModel
from codefocus.models.tiny import build_tiny_model
from codefocus.serialization import from_jsonable, to_jsonable
from codefocus.studies.runner import StudyConfig

SRC = pathlib.Path(codefocus.__file__).parent


# ---------------------------------------------------------------- the model seam


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def tiny(request):
    model, tokenizer = build_tiny_model(request.param)
    return HFModel(model, tokenizer, name=f"tiny-{request.param}", device="cpu")


def test_backends_are_told_apart_by_their_interface(tiny):
    endpoint = EndpointModel("http://127.0.0.1:9")
    assert is_white_box(tiny) and offers(tiny, TextGenerator)
    assert offers(endpoint, TextGenerator) and not is_white_box(endpoint)
    assert offers(tiny, WhiteBoxModel)


def test_interface_checks_never_run_a_property():
    class Asking:
        """Looks like a generator; its fingerprint would ask a server."""

        name = "x"

        @property
        def fingerprint(self):
            raise AssertionError("the check ran the property")

        def generate(self, *a, **k): ...
        def count_tokens(self, text): ...
        def check_fits(self, n_prompt, n_new): ...
        def default_max_new_tokens(self, reference): ...

    assert offers(Asking(), TextGenerator)
    assert not is_white_box(Asking())


def test_attention_modules_come_from_the_architecture_map(tiny):
    modules = tiny.attention_modules()
    assert len(modules) == tiny.num_layers
    if tiny.model.config.model_type == "qwen2":
        assert modules[0] is tiny.model.model.layers[0].self_attn
    else:
        assert modules[0] is tiny.model.transformer.h[0].attn


def test_attention_modules_fall_back_to_the_class_name(tiny, monkeypatch):
    from codefocus.models import hf

    monkeypatch.setattr(hf, "ATTENTION_MODULES", {})
    modules = tiny.attention_modules()
    assert len(modules) == tiny.num_layers
    assert all(type(m).__name__.endswith("Attention") for m in modules)


# ---------------------------------------------------------------- the registry


def test_every_method_has_a_definition_you_can_grep():
    sources = "".join(path.read_text() for path in (SRC / "methods").glob("*.py"))
    for name in REGISTRY:
        assert f'("{name}"' in sources, name  # Cls("name", ...) in its family's module


def test_groups_follow_the_families_and_the_study_list_is_defined_once():
    families = {m.name: m.family for m in METHODS}
    assert GROUPS["attention"]() == [n for n, f in families.items() if f == "attention"]
    assert GROUPS["perturbation"]() == ["occlusion", "bert_masking", "shap", "shap_partition"]
    assert GROUPS["all-whitebox"]() == list(STUDY_WHITEBOX)
    from codefocus.reproduce import kou2024

    assert kou2024.METHODS[: len(STUDY_WHITEBOX)] == STUDY_WHITEBOX
    text = (SRC / "reproduce" / "kou2024.py").read_text()
    assert '"saliency_reading",' not in text  # not a second copy of the list


def test_methods_take_their_own_options():
    shap, ig, first = resolve_methods(
        "shap,integrated_gradients_reading,reading_first", shap_samples=200, ig_steps=7
    )
    assert (shap.shap_samples, ig.ig_steps) == (200, 7)
    assert first.options() == {}
    assert REGISTRY["shap"].shap_samples == 50  # the registry's instance is untouched
    with pytest.raises(InvalidArgumentError, match="unknown method option 'samples'"):
        resolve_methods("shap", samples=3)
    with pytest.raises(InvalidArgumentError, match="ig_steps"):
        resolve_methods("integrated_gradients_reading", ig_steps=1)
    with pytest.raises(InvalidArgumentError, match="SHAP regularisation"):
        resolve_methods("shap", shap_l1_reg="lasso")
    with pytest.raises(UnknownNameError):
        resolve_methods("magic")


def test_a_method_without_its_inputs_says_so():
    from codefocus.methods import MethodInputs

    (method,) = resolve_methods("reading_first")
    with pytest.raises(InvalidArgumentError, match="needs a white-box model"):
        method.compute(MethodInputs())


def test_the_word_template_is_the_one_rebuild():
    prompt = "Return the largest even number in a list."
    words = word_spans(prompt)
    substitutes = [f"w{i}" for i in range(len(words))]
    template = WordTemplate(prompt, words, substitutes)
    mask = np.array([1, 0, 1, 1, 0, 1, 1, 1][: len(words)])
    absent = {int(i): substitutes[i] for i in np.flatnonzero(mask == 0)}
    assert template.render(mask) == rebuild(prompt, words, absent)
    deleting = WordTemplate(prompt, words)
    assert deleting.without(2) == rebuild(prompt, words, {2: ""})
    assert deleting.render(np.ones(len(words))) == prompt


def test_options_are_recorded_in_the_result():
    result = codefocus.attribute(
        "tiny",
        "Return the sum of a list.",
        "integrated_gradients_reading,reading_first",
        completion="    return sum(xs)\n",
        method_options={"ig_steps": 5},
    )
    assert result.settings["methods"] == {
        "integrated_gradients_reading": {"ig_steps": 5},
        "reading_first": {},
    }


# ---------------------------------------------------------------- one result format


def _attribution(**changes) -> Attribution:
    prompt = "Add two numbers"
    words = [w.with_text(prompt) for w in word_spans(prompt)]
    fields = dict(
        model="m",
        task_id="t/0",
        prompt=prompt,
        model_input=prompt,
        generated="x = 1\n",
        tokens=[Span(0, 3, "Add")],
        words=words,
        token_scores={"a": [1.0]},
        word_scores={"a": [0.5, float("nan"), 0.1], "b": [0.0, 1.0, 2.0]},
        statements=[Statement(1, 1, "x = 1")],
        statement_word_scores={"a": [[1.0, 2.0, 3.0]]},
        human_spans=[LabelledSpan(0, 3, "function", "Add")],
        settings={"scope": "study", "methods": {"a": {}, "b": {"k": 1}}},
        timings={"a": 1.0, "b": 2.0},
    )
    fields.update(changes)
    return Attribution(**fields)


def test_invariants_are_checked():
    with pytest.raises(SchemaError, match="method b has 2 word scores for 3 words"):
        _attribution(word_scores={"b": [1.0, 2.0]})
    with pytest.raises(SchemaError, match="token scores"):
        _attribution(token_scores={"a": [1.0, 2.0]})
    with pytest.raises(SchemaError, match="statement scores"):
        _attribution(statement_word_scores={"a": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]})
    with pytest.raises(SchemaError, match="past the text"):
        _attribution(tokens=[Span(0, 99, "x")])


def test_json_round_trip_and_schema_version(tmp_path):
    original = _attribution()
    again = Attribution.from_json(original.to_json())
    assert again.words == original.words and [w.text for w in again.words] == [
        "Add",
        "two",
        "numbers",
    ]
    assert math.isnan(again.word_scores["a"][1])
    assert again.statements == original.statements and again.human_spans == original.human_spans
    path = original.save(tmp_path / "a.json")
    assert Attribution.load(path).to_dict() == original.to_dict()
    assert json.loads(path.read_text())["schema"] == SCHEMA_VERSION
    data = original.to_dict()
    with pytest.raises(SchemaError, match="schema 99 is not supported"):
        Attribution.from_dict({**data, "schema": 99})
    with pytest.raises(SchemaError, match="invalid JSON"):
        Attribution.from_json(str(path))  # a path is not JSON text: load() reads files
    with pytest.raises(InvalidArgumentError, match="cannot read attribution"):
        Attribution.load(tmp_path / "missing.json")


def test_schema_1_files_are_upgraded():
    data = _attribution().to_dict()
    old = {
        **data,
        "schema": 1,
        "tokens": [[t["text"], t["start"], t["end"]] for t in data["tokens"]],
        "words": [[w["text"], w["start"], w["end"]] for w in data["words"]],
    }
    assert Attribution.from_dict(old).to_dict() == data


def test_select_and_merge():
    full = _attribution()
    a, b = full.select(["a"]), full.select("b")
    assert a.methods == ["a"] and b.methods == ["b"]
    assert (
        a.settings["methods"] == {"a": {}} and a.statement_word_scores == full.statement_word_scores
    )
    merged = a.merge(b)
    assert merged.to_dict() == full.to_dict()
    with pytest.raises(UnknownNameError):
        full.select(["c"])
    with pytest.raises(InvalidArgumentError, match="cannot merge"):
        a.merge(_attribution(generated="y = 2\n"))


# ---------------------------------------------------------------- the JSON mapping


def test_nested_records_round_trip():
    task = Task(
        "humaneval", "HumanEval/0", "p", "f", "t", "r", (LabelledSpan(0, 1, "c", "p"),), ("x",)
    )
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task
    config = StudyConfig(models=("a", "b"), task_ids=("t/1",), limit=3)
    again = StudyConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.models, tuple)
    with pytest.raises(TypeError, match="no field 'colour'"):
        StudyConfig.from_dict({"colour": "red"})

    @dataclasses.dataclass
    class Scores:
        values: list[float]
        best: float | None = None

    data = to_jsonable(Scores([1.0, float("nan")], np.float64(2.5)))
    assert data == {"values": [1.0, None], "best": 2.5}
    back = from_jsonable(Scores, data)
    assert back.values[0] == 1.0 and math.isnan(back.values[1]) and back.best == 2.5


# ---------------------------------------------------------------- package structure


def test_no_module_level_import_cycles():
    graph = {}
    for path in SRC.rglob("*.py"):
        module = ".".join(("codefocus", *path.relative_to(SRC).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("codefocus"):
                deps.add(node.module)
        graph[module] = deps - {module}

    def reaches(start, target, seen):
        for dep in graph.get(start, ()):
            if dep == target:
                return True
            if dep not in seen and not target.startswith(dep + "."):
                seen.add(dep)
                if reaches(dep, target, seen):
                    return True
        return False

    cycles = [m for m in graph if reaches(m, m, set())]
    assert cycles == []


def test_top_level_exports_load_lazily():
    code = (
        "import sys, codefocus; assert 'torch' not in sys.modules; "
        "from codefocus import attribute, Attribution, load_model, get_task, run_study; "
        "print(attribute.__module__, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["codefocus.api", "False"]
    for name in codefocus.__all__:
        assert getattr(codefocus, name) is not None


def test_one_error_hierarchy():
    from codefocus.errors import ContextTooLongError, EndpointError, ModelLoadError
    from codefocus.models import endpoint, hf, packaged

    assert endpoint.EndpointError is EndpointError and hf.ContextTooLongError is ContextTooLongError
    assert issubclass(packaged.PackagedModelError, ModelLoadError)
    assert RECOVERABLE[0] is CodefocusError
    for path in SRC.rglob("*.py"):
        if path.name != "errors.py":
            assert "(CodefocusError, RuntimeError, MemoryError)" not in path.read_text(), path
            assert not any(
                isinstance(n, ast.ClassDef)
                and any(getattr(b, "id", "").endswith("Error") for b in n.bases)
                for n in ast.walk(ast.parse(path.read_text()))
            ), path


def test_python_dash_m_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "codefocus", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"codefocus {codefocus.__version__}"


def test_the_library_caches_generations_by_default(tmp_path, monkeypatch):
    import sqlite3

    from codefocus.models.base import GenerationSettings

    settings = GenerationSettings(max_new_tokens=5)
    path = tmp_path / "generations.sqlite"
    monkeypatch.setenv("CODEFOCUS_GENERATION_CACHE", str(path))
    first = codefocus.attribute("tiny", "Return one.", "reading_first", settings=settings)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM generations_v2").fetchone()[0] == 1
    again = codefocus.attribute("tiny", "Return one.", "reading_first", settings=settings)
    assert again.generated == first.generated
    monkeypatch.setenv("CODEFOCUS_GENERATION_CACHE", "off")
    path.unlink()
    codefocus.attribute("tiny", "Return two.", "reading_first", settings=settings)
    assert not path.exists()
    none = codefocus.attribute(
        "tiny", "Return two.", "reading_first", settings=settings, cache=None
    )
    assert none.generated is not None
