import inspect
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
        (
            ["attribute", "--model", "tiny", "--task", "humaneval/0", "--method-option", "x"],
            "--method-option: expected NAME=VALUE, got 'x'",
        ),
        (
            ["study", "--out", "s", "--models", "tiny", "--method-option", "magic=3"],
            "--method-option: unknown method option 'magic'",
        ),
        (
            ["probe", "--model", "tiny", "--out", "p", "--method-option", "perturb_units=par"],
            "--method-option: unknown perturb_units 'par'",
        ),
        (
            ["faithfulness", "--attribution", "a.json", "--method-option", "hierarchical_top=2"],
            "--method-option: only with --task",
        ),
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ---------------------------------------------------------------- help and vocabulary


def _commands(command, path=()):
    """Every command below ``command`` (click's tree of the typer app), with its path."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def _one_line(text: str) -> list[str]:
    """``text``'s paragraphs, each with its line breaks and indentation collapsed."""
    return [" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n") if p.strip()]


def _shown(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


def test_every_help_reads_in_whole_sentences(monkeypatch):
    """Each command's --help, rendered wide enough that nothing needs wrapping: every paragraph
    of a command's docstring, every subcommand's summary and every option's help is on one line
    (a docstring's line break shown literally would split it)."""
    import typer
    from typer.testing import CliRunner

    from codefocus.cli import app

    monkeypatch.setattr("typer.rich_utils.MAX_WIDTH", 1000)
    runner = CliRunner()
    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) > 25
    for path, command in commands:
        result = runner.invoke(app, [*path, "--help"], prog_name="codefocus")
        assert result.exit_code == 0, (path, result.output)
        lines = [" ".join(line.strip(" │╭╮╰╯─").split()) for line in result.output.splitlines()]

        doc = inspect.getdoc(getattr(command, "callback", None)) or command.help or ""
        if path:
            for paragraph in _one_line(doc):
                assert _shown(lines, paragraph), (path, paragraph, result.output)
        for name, sub in getattr(command, "commands", {}).items():
            summary = _one_line(inspect.getdoc(sub.callback) or sub.help or "")[0]
            assert _shown(lines, f"{name} {summary}"), (path, name, result.output)
        for param in command.params:
            if param.help and not getattr(param, "hidden", False):
                assert _shown(lines, " ".join(param.help.split())), (
                    path,
                    param.name,
                    result.output,
                )


OLD_SPELLINGS = [
    ("attribute", "--top"),
    ("data methodnames", "--top"),
    ("demo", "--tasks"),
    ("demo", "--perturbation-tasks"),
]


@pytest.mark.parametrize("command,old", OLD_SPELLINGS)
def test_old_spellings_are_hidden_from_help(command, old):
    from typer.testing import CliRunner

    from codefocus.cli import app

    output = CliRunner().invoke(app, [*command.split(), "--help"]).output
    assert old not in output.replace(f"{old}-", "")  # --tasks, not --tasks-...
    assert "terminal" not in output


def _main(argv, capsys):
    """Run the command line in this process: (exit status, stdout, stderr)."""
    from codefocus.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.mark.slow
def test_attribute_k_and_text_are_the_old_top_and_terminal(tmp_path, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Return the sum of a list of numbers.\n")
    common = ["attribute", "--model", "tiny", "--prompt-file", str(prompt)]
    common += ["--methods", "reading_first,coding_all", "--max-new-tokens", "4"]
    new = _main([*common, "--k", "3", "--format", "text"], capsys)
    old = _main([*common, "--top", "3", "--format", "terminal"], capsys)
    assert new[0] == old[0] == 0, (new, old)
    assert new[1] == old[1] and "reading_first" in new[1]
    assert "--top is now --k" in old[2] and "--format terminal is now --format text" in old[2]
    assert "warning" not in new[2]
    assert _main([*common, "--k", "3", "--top", "5"], capsys)[0] == 2  # two different values


class _Called(Exception):
    pass


def _recorded(monkeypatch, capsys, target: str, argv: list[str]) -> dict:
    """The arguments the command line passes to ``target`` (which is not run)."""
    calls = []

    def record(*args, **kwargs):
        calls.append({"args": args, **kwargs})
        raise _Called

    monkeypatch.setattr(target, record)
    with pytest.raises(_Called):
        from codefocus.cli import main

        main(argv)
    capsys.readouterr()
    return calls[0]


def test_methodnames_names_is_the_old_top(tmp_path, monkeypatch, capsys):
    target = "codefocus.lab.methodnames.build_methodnames"
    argv = ["data", "methodnames", "--out", str(tmp_path / "m")]
    new = _recorded(monkeypatch, capsys, target, [*argv, "--names", "7"])
    old = _recorded(monkeypatch, capsys, target, [*argv, "--top", "7"])
    assert new == old and new["top"] == 7


def test_demo_prompts_are_the_old_tasks(tmp_path, monkeypatch, capsys):
    target = "codefocus.studies.runner.demo_sample"
    argv = ["demo", "--out", str(tmp_path / "d")]
    new = _recorded(
        monkeypatch, capsys, target, [*argv, "--prompts", "6", "--perturbation-prompts", "2"]
    )
    old = _recorded(
        monkeypatch, capsys, target, [*argv, "--tasks", "6", "--perturbation-tasks", "2"]
    )
    assert new == old and new["args"][:2] == (6, 2)


def test_autofocus_pooling_takes_the_old_names(tmp_path, capsys):
    common = ["autofocus", "train", "--out", str(tmp_path / "a"), "--language", "go"]
    for old, new in (("sigmoid", "sigmoid-gate"), ("softmax", "softmax-gate")):
        status, _, err = _main([*common, "--pooling", old], capsys)
        # the old name passes (with a note); the bad --language after it stops the command
        assert status == 2 and f"--pooling {old} is now --pooling {new}" in err, err
        assert "--language" in err
    status, _, err = _main([*common, "--pooling", "softmax-dot"], capsys)
    assert status == 2 and "warning" not in err and "--language" in err
    status, _, err = _main([*common[:4], "--pooling", "max"], capsys)
    assert status == 2 and "use softmax-dot, sigmoid-gate, softmax-gate" in err


def test_autofocus_show_takes_text_and_the_old_terminal():
    from codefocus.cli.options import check_choice
    from codefocus.errors import InvalidArgumentError

    choices, old = ("text", "html"), {"terminal": "text"}
    assert check_choice("--format", "terminal", choices, old) == "text"
    assert check_choice("--format", "text", choices, old) == "text"
    with pytest.raises(
        InvalidArgumentError, match="use text, html$"
    ):  # the old value is not listed
        check_choice("--format", "pdf", choices, old)


# ---------------------------------------------------------------- file permissions


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    from codefocus.cli.options import write_output
    from codefocus.storage import write_text_atomic

    before = os.umask(umask)
    try:
        write_output("<html></html>", tmp_path / "report.html")
        assert (tmp_path / "report.html").stat().st_mode & 0o777 == mode
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives, for comparison
        assert plain.stat().st_mode & 0o777 == mode
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        kept.chmod(0o604)  # a file replaced keeps its permissions
        write_text_atomic(kept, "[]")
        assert kept.stat().st_mode & 0o777 == 0o604 and kept.read_text() == "[]"
    finally:
        os.umask(before)


def test_method_options_reach_the_attribution_options(data_dir, tmp_path, monkeypatch, capsys):
    """--method-option NAME=VALUE (repeatable, typed) joins --shap-l1-reg in the options the
    library gets, for attribute and for study."""
    argv = ["attribute", "--model", "tiny", "--task", "humaneval/0", "--methods", "loo_logprob"]
    argv += ["--data", str(data_dir), "--method-option", "perturb_units=line"]
    argv += ["--method-option", "hierarchical_top=3"]
    argv += ["--method-option", "hierarchical_coverage=0.5", "--shap-l1-reg", "aic"]
    call = _recorded(monkeypatch, capsys, "codefocus.api.attribute", argv)
    options = call["args"][3]
    assert options.method_options == {
        "shap_l1_reg": "aic",
        "perturb_units": "line",
        "hierarchical_top": 3,
        "hierarchical_coverage": 0.5,
    }
    twice = [*argv, "--method-option", "hierarchical_top=4"]
    assert _main(twice, capsys)[0] == 2
    study = ["study", "--out", str(tmp_path / "s"), "--models", "tiny"]
    study += ["--data", str(data_dir), "--method-option", "loo_mode=delete"]
    call = _recorded(monkeypatch, capsys, "codefocus.studies.executors.run_study", study)
    assert call["args"][0].options.method_options == {"loo_mode": "delete"}
