"""One options object (``codefocus.options.AttributionOptions``) for ``attribute``, a study and a
probe; ``--device``, ``--dtype`` and ``--max-memory`` on every command that loads a model."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

from codefocus.api import attribute
from codefocus.errors import InvalidArgumentError
from codefocus.models.placement import parse_memory, resolve_device, resolve_dtype
from codefocus.options import AttributionOptions, build_options
from codefocus.protocols import get_protocol
from codefocus.studies.runner import StudyConfig

PROMPT = 'def add(a, b):\n    """Return the sum of a and b."""\n'
COMPLETION = "    return a + b\n"


def _comparable(result) -> dict:
    return {k: v for k, v in result.to_dict().items() if k != "timings"}


def test_old_keywords_and_the_options_object_give_the_same_attribution(tiny_qwen2):
    from codefocus.generation.records import GenerationSettings

    methods = "reading_first,saliency_coding,occlusion"
    short = GenerationSettings(max_new_tokens=4)
    old = attribute(
        tiny_qwen2,
        PROMPT,
        methods,
        completion=COMPLETION,
        settings=short,
        cache=None,
        scope="prompt",
        exclude_sink=True,
        similarity="bleu-smooth",
        engine="plain",
        batch_size=4,
        aggregation="mean",
        protocol="kou2024",
        method_options={"gradient_chunk": 2},
    )
    options = AttributionOptions(
        protocol="kou2024",
        aggregation="mean",
        similarity="bleu-smooth",
        scope="prompt",
        exclude_sink=True,
        engine="plain",
        batch_size=4,
        method_options={"gradient_chunk": 2},
    )
    new = attribute(
        tiny_qwen2, PROMPT, methods, options, completion=COMPLETION, settings=short, cache=None
    )
    assert _comparable(old) == _comparable(new)
    assert new.settings["aggregation"] == "mean" and new.settings["scope"] == "prompt"
    assert new.settings["methods"]["saliency_coding"]["gradient_chunk"] == 2
    # keywords change the options given with them
    changed = attribute(
        tiny_qwen2,
        PROMPT,
        "reading_first",
        options,
        completion=COMPLETION,
        cache=None,
        scope="study",
    )
    assert changed.settings["scope"] == "study"


def test_shap_l1_reg_is_a_method_option_and_the_keyword_still_works():
    with pytest.warns(DeprecationWarning, match="method_options"):
        old = build_options(shap_l1_reg="aic")
    assert old == AttributionOptions(method_options={"shap_l1_reg": "aic"})
    assert old.methods("shap")[0].shap_l1_reg == "aic"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_options(AttributionOptions(), scope="prompt")  # other keywords: no warning


def test_the_options_round_trip_through_json():
    options = AttributionOptions(
        protocol=get_protocol("kou2024:exclude_sink=true"),
        substitutes="wordnet",
        method_options={"shap_samples": 10, "shap_l1_reg": "bic"},
        device="cpu",
        dtype="bfloat16",
        max_memory="512MiB",
    )
    assert options.max_memory == 512 * 2**20
    again = AttributionOptions.from_dict(json.loads(json.dumps(options.to_dict())))
    assert again == options and hash(again) == hash(options)
    named = AttributionOptions(protocol="kou2024", scope="prompt")
    assert AttributionOptions.from_dict(json.loads(json.dumps(named.to_dict()))) == named


@pytest.mark.parametrize(
    "field,value",
    [
        ("dtype", "float8"),
        ("device", "tpu"),
        ("max_memory", "4XB"),
        ("max_memory", "0GB"),
        ("scope", "all"),
        ("similarity", "rouge"),
        ("substitutes", "thesaurus"),
        ("engine", "vllm"),
        ("protocol", "kou"),
        ("aggregation", "median"),
        ("batch_size", 0),
        ("exclude_sink", "yes"),
    ],
)
def test_a_bad_option_is_one_line_naming_it_and_its_value(field, value):
    from codefocus.errors import CodefocusError

    with pytest.raises(CodefocusError) as raised:
        AttributionOptions(**{field: value})
    message = str(raised.value)
    assert message.startswith(f"{field}: ") and repr(value) in message and "\n" not in message
    assert raised.value.option == field


def test_bad_method_options_name_the_method_option():
    with pytest.raises(InvalidArgumentError, match=r"^shap_l1_reg: .*'lasso'"):
        AttributionOptions(method_options={"shap_l1_reg": "lasso"})
    with pytest.raises(InvalidArgumentError, match=r"^method_options: .*'colour'"):
        AttributionOptions(method_options={"colour": 1})


@pytest.mark.parametrize(
    "text,size",
    [("4GB", 4 * 10**9), ("512MB", 512 * 10**6), ("2GiB", 2 * 2**30), ("1.5 gb", 15 * 10**8)],
)
def test_memory_sizes(text, size):
    assert parse_memory(text) == size
    assert parse_memory(size) == size and parse_memory(None) is None


@pytest.mark.parametrize("text", ["4XB", "GB", "-1GB", "0", "four", True])
def test_bad_memory_sizes(text):
    with pytest.raises(InvalidArgumentError):
        parse_memory(text)


def test_max_memory_reaches_the_methods_that_take_it(monkeypatch):
    import codefocus.methods

    options = AttributionOptions(max_memory="1GB")
    if "max_memory" not in codefocus.methods.OPTION_NAMES:
        assert "max_memory" not in options.method_arguments()
        monkeypatch.setattr(
            codefocus.methods, "OPTION_NAMES", codefocus.methods.OPTION_NAMES | {"max_memory"}
        )
    assert options.method_arguments()["max_memory"] == 10**9
    assert AttributionOptions().method_arguments() == {}


# ---- device and dtype ------------------------------------------------------------------------
def test_auto_placement_off_and_on_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_device("auto") == "auto"  # accelerate's device_map="auto"
    assert resolve_dtype("auto", "auto") == resolve_dtype("auto", "cuda:1") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", "cuda") == "float16"
    assert resolve_dtype("float32", "cuda") == "float32" and resolve_device("cpu") == "cpu"


def test_a_model_placed_by_accelerate_keeps_its_placement():
    from codefocus.models.hf import HFModel
    from codefocus.models.tiny import build_tiny_model

    net, tokenizer = build_tiny_model("qwen2")
    net.hf_device_map = {"": "cpu"}  # as from_pretrained(device_map="auto") leaves it
    model = HFModel(net, tokenizer, "placed", device="auto")
    assert str(model.device) == "cpu"


def test_the_dtype_is_loaded_and_recorded():
    result = attribute(
        "tiny", PROMPT, "reading_first,saliency_coding", completion=COMPLETION, cache=None,
        dtype="bfloat16", device="cpu",
    )  # fmt: skip
    assert result.settings["dtype"] == "bfloat16" and result.settings["device"] == "cpu"
    assert not result.failures and len(result.word_scores["saliency_coding"]) > 0


def test_a_loaded_model_in_another_dtype_is_refused(tiny_qwen2):
    with pytest.raises(InvalidArgumentError, match="^dtype: 'bfloat16' asked for"):
        attribute(tiny_qwen2, PROMPT, "reading_first", completion=COMPLETION, dtype="bfloat16")
    recorded = attribute(tiny_qwen2, PROMPT, "reading_first", completion=COMPLETION, cache=None)
    assert (recorded.settings["device"], recorded.settings["dtype"]) == ("cpu", "float32")


def test_cuda_on_a_machine_without_it_is_one_line(monkeypatch):
    import torch

    from codefocus.options import load

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidArgumentError, match="^device: 'cuda' asked for"):
        load("tiny", device="cuda")


# ---- the study's and the probe's configuration -----------------------------------------------
OLD_STUDY = {
    "models": ["tiny"],
    "methods": ["reading_all"],
    "benchmarks": ["humaneval"],
    "limit": 1,
    "labelled_only": True,
    "max_new_tokens": 4,
    "substitutes": None,
    "similarity": None,
    "timeout": 3.0,
    "scope": "prompt",
    "exclude_sink": None,
    "shap_l1_reg": "none",
    "protocol": "kou2024",
    "perturbation_tasks": None,
    "data_dir": None,
    "task_ids": [],
    "perturbation_task_ids": [],
    "verdicts": "all",
}


def test_a_study_holds_the_options_and_reads_its_old_flat_keys(tmp_path):
    expected = StudyConfig(
        models=("tiny",),
        methods=("reading_all",),
        limit=1,
        max_new_tokens=4,
        options=AttributionOptions(protocol="kou2024", scope="prompt"),
    )
    assert StudyConfig.from_dict(OLD_STUDY) == expected
    flat = StudyConfig(
        models=("tiny",), methods=("reading_all",), limit=1, max_new_tokens=4,
        protocol="kou2024", scope="prompt",
    )  # fmt: skip
    assert flat == expected and flat.scope == "prompt" and flat.protocol == "kou2024"
    # the stored form keeps every old key as it was (the resume check compares them)
    stored = expected.to_dict()
    assert {k: stored[k] for k in OLD_STUDY} == OLD_STUDY
    assert (stored["device"], stored["dtype"]) == ("auto", "auto")
    assert StudyConfig.from_dict(json.loads(json.dumps(stored))) == expected
    # a TOML file with the old flat keys, and one with an options table
    old_file = tmp_path / "old.toml"
    old_file.write_text(
        '[study]\nmodels = "tiny"\nmethods = "reading_all,shap"\nscope = "prompt"\n'
        'shap_l1_reg = "aic"\nprotocol = "kou2024"\ndtype = "bfloat16"\nmax_memory = "2GB"\n'
    )
    loaded = StudyConfig.from_file(old_file)
    assert loaded.options == AttributionOptions(
        protocol="kou2024", scope="prompt", method_options={"shap_l1_reg": "aic"},
        dtype="bfloat16", max_memory=2 * 10**9,
    )  # fmt: skip
    assert loaded.shap_l1_reg == "aic" and loaded.dtype == "bfloat16"
    nested = tmp_path / "nested.toml"
    nested.write_text('[study]\nmodels = "tiny"\n[study.options]\nscope = "prompt"\n')
    assert StudyConfig.from_file(nested).scope == "prompt"
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nmodels = "tiny"\ndtype = "float8"\n')
    with pytest.raises(InvalidArgumentError, match="dtype: unknown dtype 'float8'"):
        StudyConfig.from_file(bad)


def test_replacing_a_flat_key_changes_the_options():
    config = StudyConfig(models=("tiny",), scope="prompt")
    other = dataclasses.replace(config, protocol="kou2024")
    assert other.options == AttributionOptions(protocol="kou2024", scope="prompt")
    assert dataclasses.replace(config, limit=2).options is config.options
    assert other.run_protocol().name.startswith("kou2024")
    with pytest.raises(TypeError, match="no field 'colour'"):
        StudyConfig(colour="red")


def test_the_probe_config_holds_the_options_and_stores_what_it_stored():
    from codefocus.probes.runner import ProbeConfig

    old = {
        "model": "default", "benchmark": "mbpp", "limit": None, "rank_by": ["bert_masking"],
        "ks": [1, 3], "substitutes": "embedding", "random_seeds": [0, 1, 2], "lowest": True,
        "timeout": 3.0, "data_dir": None, "labelled_only": True, "protocol": "codefocus",
    }  # fmt: skip
    config = ProbeConfig.from_dict(old)
    assert config == ProbeConfig() and config.to_dict() == old  # a resumed probe compares equal
    placed = ProbeConfig(substitutes="wordnet", dtype="bfloat16")
    assert placed.options == AttributionOptions(substitutes="wordnet", dtype="bfloat16")
    assert placed.substitutes == "wordnet" and placed.to_dict()["dtype"] == "bfloat16"
    assert ProbeConfig.from_dict(json.loads(json.dumps(placed.to_dict()))) == placed


# ---- the command line --------------------------------------------------------------------------
def _main(argv, capsys):
    from codefocus.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


COMMANDS = [
    ["attribute", "--model", "tiny", "--task", "humaneval/0"],
    ["study", "--model", "tiny", "--out", "{tmp}/s"],
    ["demo", "--out", "{tmp}/d"],
    ["probe", "--model", "tiny", "--out", "{tmp}/p"],
    ["generate", "--model", "tiny", "--out", "{tmp}/s.jsonl"],
    ["serve", "--model", "tiny"],
]


# generate and serve run no method: they take no memory budget (no --max-memory)
BAD_PLACEMENTS = [
    (command, flag, value)
    for command in COMMANDS
    for flag, value in [("--dtype", "float8"), ("--device", "tpu"), ("--max-memory", "4XB")]
    if not (flag == "--max-memory" and command[0] in ("generate", "serve"))
]


@pytest.mark.parametrize(
    "command,flag,value", BAD_PLACEMENTS, ids=[f"{c[0]}{f}" for c, f, _ in BAD_PLACEMENTS]
)
def test_bad_placement_on_the_command_line_is_one_line(command, flag, value, tmp_path, capsys):
    argv = [part.replace("{tmp}", str(tmp_path)) for part in command]
    status, _, err = _main([*argv, flag, value], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codefocus: error: {flag}: "), err
    assert repr(value) in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing started


def test_the_command_line_records_the_dtype(tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Return the sum of a list of numbers.\n")
    argv = ["attribute", "--model", "tiny", "--prompt-file", str(prompt), "--no-cache"]
    argv += ["--methods", "reading_first,saliency_reading", "--max-new-tokens", "4"]
    status, out, err = _main([*argv, "--dtype", "bfloat16", "--format", "json"], capsys)
    assert status == 0, err
    settings = json.loads(out)["settings"]
    assert (settings["device"], settings["dtype"]) == ("cpu", "bfloat16")
