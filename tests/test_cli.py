import json
import os
import subprocess
import sys

import pytest


def run(*args, env_data=None):
    env = {k: v for k, v in os.environ.items() if k != "CODEFOCUS_DATA"}
    env["COLUMNS"] = "200"
    if env_data:
        env["CODEFOCUS_DATA"] = str(env_data)
    return subprocess.run(
        [sys.executable, "-m", "codefocus.cli", *args], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["data", "check"], "no data directory"),
        (["data", "check", "--data", "/nonexistent"], "data directory not found"),
        (["reproduce", "kou2024", "--k", "0"], "K must be positive"),
        (["reproduce", "kou2024", "--models", "gpt5"], "unknown model 'gpt5'"),
        (["reproduce", "kou2024", "--methods", "magic"], "unknown method 'magic'"),
        (["tasks", "show", "mbpp/100000"], "is not in mbpp"),
        (["attribute", "--model", "tiny", "--task", "humaneval/0", "--scope", "all"], "--scope"),
        (
            ["attribute", "--model", "tiny", "--task", "humaneval/0", "--shap-l1-reg", "lasso"],
            "--shap-l1-reg",
        ),
        (["study", "--out", "s", "--models", "tiny", "--scope", "all"], "--scope"),
        (["demo", "--perturbation-prompts", "-1"], "--perturbation-prompts"),
    ],
)
def test_bad_input_is_one_line(data_dir, args, message):
    result = run(*args, env_data=None if args == ["data", "check"] else data_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_reproduce_json_lines(data_dir):
    result = run(
        "reproduce",
        "kou2024",
        "--data",
        str(data_dir),
        "--json",
        "--models",
        "codegen",
        "--methods",
        "bert_perturbation",
        "--k",
        "5",
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records == [
        {
            "model": "codegen",
            "method": "bert_perturbation",
            "k": 5,
            "precision": 0.518,
            "recall": 0.432,
            "f1": 0.471,
            "alpha": 0.29,
        }
    ]


def test_reproduce_tables_and_categories(data_dir):
    result = run(
        "reproduce",
        "kou2024",
        "--data",
        str(data_dir),
        "--per-category",
        "--models",
        "codegen,codeparrot,gptj,incoder,polycoder",
        "--methods",
        "bert_perturbation",
    )
    assert result.returncode == 0, result.stderr
    assert "Table 2" in result.stdout and "Table 3" in result.stdout
    assert "conditional" in result.stdout and "45.7" in result.stdout


def test_data_check_prints_counts(data_dir):
    result = run("data", "check", "--json", env_data=data_dir)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["kept"] for r in reports] == [1090, 6889]
    human = run("data", "check", env_data=data_dir)
    assert "dropped: unknown category 'type2'" in human.stdout


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--noise", "0,lots"], "noise must be percentages"),
        (["--noise", "0,120"], "between 0 and 100"),
        (["--model", "gpt"], "unknown model 'gpt'"),
        (["--noise-kind", "typos"], "unknown noise kind 'typos'"),
        (["--dataset", "/nonexistent"], "unknown dataset"),
        (["--dataset", "{broken}"], "not a readable lab dataset"),
        (["--out", "{file}/m"], "cannot write results to"),
        (["--csr-programs", "-1"], "csr-programs must be at least 1"),
        (["--per-class", "0"], "per-class must be at least 1"),
    ],
)
def test_memorization_bad_input_is_one_line(tmp_path, extra, message):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dataset.json").write_text("{oops")
    (tmp_path / "file").write_text("")
    extra = [arg.format(broken=tmp_path / "broken", file=tmp_path / "file") for arg in extra]
    out = ["--out", str(tmp_path / "m")] if "--out" not in extra else []
    result = run("memorization", *out, "--epochs", "1", *extra)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]


def test_memorization_command_on_a_saved_dataset(tmp_path):
    from codefocus.lab.datasets import LabDataset, Sample

    code = (
        "def _(values):\n    total = 0\n    for v in values:\n        total += v{}\n"
        "    return total\n"
    )
    other = "def _(text):\n    parts = text.split(){}\n    return '-'.join(parts)\n"
    samples = [
        Sample((code if i % 2 else other).format(" * " + str(i)), i % 2, "") for i in range(30)
    ]
    LabDataset("names", "python", ["join", "sum"], samples[:20], samples[20:24], samples[24:]).save(
        tmp_path / "data"
    )
    args = ["memorization", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "m")]
    result = run(*args, "--epochs", "2", "--noise", "0,100")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "100% label noise: train acc" in result.stdout and "gini" in result.stdout
    for name in ("gini.csv", "csr.csv", "test_f1.csv", "f1.png", "report.html"):
        assert (tmp_path / "m" / name).is_file()
