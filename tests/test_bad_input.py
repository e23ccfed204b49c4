"""Bad input, across every command: one line on stderr, exit status 2, no traceback, and no file
touched; then the safety nets (no overwrite without --force, outputs checked before the work,
a finished result kept when writing fails, progress in logs, a resume hint on interruption)."""

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TOML_GOOD = '[study]\nmodels = ["tiny"]\nmethods = ["occlusion"]\nlimit = 1\n'


def run(args, cwd, data_dir, timeout=300):
    env = {**os.environ, "CODEFOCUS_DATA": str(data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "codefocus", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def snapshot(folder: Path) -> dict:
    """Every file below ``folder`` (links not followed) and a hash of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_dir):
    """A folder with the files the bad inputs point at."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "notes.md").write_text("notes\n")
    (root / "adir").mkdir()
    (root / "sdir").mkdir()  # not a study
    (root / "udir").mkdir()  # not a user study
    sample = json.dumps({"task_id": "HumanEval/0", "completion": "    return True\n"})
    (root / "torn.jsonl").write_text(f"{sample}\n{{not json\n{sample}\n")
    (root / "good.jsonl").write_text(sample + "\n")
    (root / "good.jsonl_results.jsonl").write_text("earlier results\n")
    (root / "latin1.jsonl").write_bytes(b'{"task_id": "HumanEval/0", "completion": "caf\xe9"}\n')
    (root / "empty.txt").write_text("  \n")
    (root / "binary.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    (root / "prompt.txt").write_text("Write a function that adds two numbers.\n")
    (root / "bad_limit.toml").write_text(TOML_GOOD.replace("limit = 1", 'limit = "two"'))
    (root / "bad_bool.toml").write_text(TOML_GOOD + 'labelled_only = "no"\n')
    (root / "bad_syntax.toml").write_text("[study\nmodels = 1\n")
    (root / "good.toml").write_text(TOML_GOOD)
    (root / "corrupt").mkdir()
    (root / "corrupt" / "study.sqlite").write_bytes(b"this is not a database\n" * 10)
    (root / "nostudy").mkdir()
    original = data_dir / "humaneval" / "HumanEval.jsonl.gz"
    for name, content in (
        ("notgzip", b"plain text, not gzip\n"),
        ("truncated", original.read_bytes()[:3000]),
        ("badjson", gzip.compress(b'{"task_id": "HumanEval/0"\n')),
    ):
        copy = root / f"data-{name}"
        (copy / "humaneval").mkdir(parents=True)
        for entry in data_dir.iterdir():
            if entry.name != "humaneval":
                (copy / entry.name).symlink_to(entry)
        (copy / "humaneval" / "HumanEval.jsonl.gz").write_bytes(content)
    return root


TINY = ["--model", "tiny", "--task", "humaneval/0", "--methods", "occlusion"]
GEN = ["generate", "--model", "tiny", "--limit", "1", "--max-new-tokens", "4"]

BAD = [
    # generate
    ([*GEN, "--out", "notes.md"], "notes.md:1 is not a sample record"),
    ([*GEN, "--out", "torn.jsonl"], "torn.jsonl:2 is not a sample record"),
    ([*GEN, "--out", "latin1.jsonl"], "not UTF-8"),
    ([*GEN, "--out", "adir"], "is a directory"),
    ([*GEN, "--out", "s.jsonl", "--n", "0"], "--n must be positive"),
    ([*GEN, "--out", "s.jsonl", "--temperature", "-1"], "--temperature must be 0 or more"),
    (["generate", "--out", "s.jsonl", "--limit", "0"], "--limit must be positive"),
    (["generate", "--out", "s.jsonl", "--max-new-tokens", "0"], "--max-new-tokens must be"),
    (
        ["generate", "--out", "s.jsonl", "--benchmark", "nope", "--model", "tiny"],
        "unknown benchmark",
    ),
    (["generate", "--out", "s.jsonl", "--format", "xml"], "--format"),
    # attribute
    (
        ["attribute", *TINY, "--format", "html", "--out", "notes.md/x.html"],
        "not a writable directory",
    ),
    (["attribute", *TINY, "--format", "html", "--out", "notes.md"], "exists: use --force"),
    (["attribute", *TINY, "--format", "json", "--out", "adir"], "is a directory"),
    (["attribute", *TINY, "--out", "x.json"], "--out needs --format"),
    (["attribute", *TINY, "--max-new-tokens", "0"], "--max-new-tokens must be positive"),
    (["attribute", "--model", "tiny", "--task", "humaneval/0", "--methods", ""], "no method given"),
    (["attribute", *TINY, "--methods", "magic"], "unknown method 'magic'"),
    (["attribute", *TINY, "--similarity", "foo"], "--similarity"),
    (["attribute", *TINY, "--substitutes", "foo"], "--substitutes"),
    (["attribute", *TINY, "--k", "0"], "--k"),
    (["attribute", *TINY, "--format", "pdf"], "--format"),
    (["attribute", *TINY, "--scope", "all"], "--scope"),
    (["attribute", *TINY, "--shap-l1-reg", "lasso"], "--shap-l1-reg"),
    (["attribute", "--model", "tiny", "--prompt-file", "empty.txt"], "is empty"),
    (["attribute", "--model", "tiny", "--prompt-file", "binary.bin"], "not UTF-8"),
    (["attribute", "--model", "tiny", "--prompt-file", "missing.txt"], "file not found"),
    (["attribute", "--model", "tiny"], "exactly one of --task or --prompt-file"),
    (
        [
            "attribute",
            "--model",
            "http://:abc",
            "--prompt-file",
            "prompt.txt",
            "--methods",
            "occlusion",
        ],
        "bad endpoint",
    ),
    (["attribute", "--model", "tiny", "--task", "humaneval/99999"], "is not in humaneval"),
    (["attribute", "--model", "tiny", "--task", "question/1"], "bad task reference"),
    # evaluate
    (
        ["evaluate", "good.jsonl", "--timeout", "-1", "--out", "r.jsonl"],
        "--timeout must be positive",
    ),
    (
        ["evaluate", "good.jsonl", "--workers", "0", "--out", "r.jsonl"],
        "--workers must be positive",
    ),
    (["evaluate", "missing.jsonl"], "file not found"),
    (["evaluate", "latin1.jsonl", "--out", "r.jsonl"], "not UTF-8"),
    (["evaluate", "good.jsonl"], "good.jsonl_results.jsonl exists: use --force"),
    (["evaluate", "canonical", "--format", "yaml"], "--format"),
    # serve
    (["serve", "--model", "tiny", "--port", "-1"], "--port must be between 0 and 65535"),
    (["serve", "--model", "tiny", "--port", "70000"], "--port must be between 0 and 65535"),
    # study
    (
        ["study", "--model", "tiny", "--methods", "occlusion", "--limit", "-1", "--out", "s"],
        "--limit",
    ),
    (["study", "--model", "tiny", "--limit", "two", "--out", "s"], "'--limit'"),
    (["study", "--config", "bad_limit.toml", "--out", "s"], "limit must be a positive integer"),
    (["study", "--config", "bad_bool.toml", "--out", "s"], "labelled_only must be true or false"),
    (["study", "--config", "bad_syntax.toml", "--out", "s"], "cannot read study config"),
    (["study", "--config", "missing.toml", "--out", "s"], "cannot read study config"),
    (["study", "--config", "good.toml", "--limit", "2", "--out", "s"], "--config"),
    (["study", "--model", "tiny", "--executor", "spark", "--out", "s"], "--executor"),
    (["study", "--model", "tiny", "--out", "notes.md"], "is a file"),
    (["study", "--model", "tiny", "--max-new-tokens", "0", "--out", "s"], "--max-new-tokens"),
    (["study", "--model", "tiny", "--methods", "magic", "--out", "s"], "unknown method 'magic'"),
    (["study", "--model", "", "--out", "s"], "models must name at least one"),
    # report and demo
    (["report", "corrupt"], "not a readable study store"),
    (["report", "nostudy"], "no study in nostudy"),
    (["demo", "--prompts", "0"], "--prompts must be positive"),
    (["demo", "--protocol", "kou"], "--protocol"),
    (["demo", "--perturbation-prompts", "-1"], "--perturbation-prompts"),
    # data, tasks, reproduce
    (["data", "check", "--data", "data-notgzip"], "unreadable file"),
    (["data", "check", "--data", "data-truncated"], "truncated file"),
    (["data", "check", "--data", "data-badjson"], "malformed JSON line"),
    (["data", "check", "--data", "nowhere"], "data directory not found"),
    (["data", "check", "--format", "xml"], "--format"),
    (["data", "methodnames", "--out", "m", "--names", "0"], "--names must be positive"),
    (["data", "methodnames", "--out", "notes.md"], "is a file"),
    (["reproduce", "kou2024", "--k", "0"], "K must be positive"),
    (["reproduce", "kou2024", "--k", "a,b"], "K must be a list of integers"),
    (["tasks", "show", "mbpp/100000"], "is not in mbpp"),
    # the lab
    (["memorization", "--out", "m", "--noise", "a,b"], "--noise"),
    (["memorization", "--out", "m", "--epochs", "0"], "epochs must be at least 1"),
    (["memorization", "--out", "notes.md"], "is a file"),
    (["memorization", "--out", "m", "--model", "gru"], "unknown model 'gru'"),
    (["autofocus", "train", "--out", "a", "--epochs", "0"], "--epochs must be positive"),
    (["autofocus", "analyze", "adir"], "no trained model"),
    (["autofocus", "show", "adir"], "no analysis"),
    (["autofocus", "show", "adir", "--format", "pdf"], "--format"),
    (["autofocus", "show", "adir", "--grey", "log"], "--grey"),
    (["autofocus", "train", "--out", "a", "--encoder", "gnn"], "--encoder"),
    (["autofocus", "train", "--out", "a", "--pooling", "max"], "--pooling"),
    (["autofocus", "train", "--out", "a", "--language", "go"], "--language"),
    # robustness probes and the user study
    (["probe", "--out", "p", "--k", "0"], "K must be positive"),
    (["probe", "--out", "p", "--rank-by", "nope"], "unknown method 'nope'"),
    (["probe", "--out", "notes.md"], "is a file"),
    (["probe", "--out", "p", "--random-seeds", "x"], "--random-seeds"),
    (["userstudy", "create", "sdir", "--out", "u", "--tasks", "0"], "--tasks"),
    (["userstudy", "create", "sdir", "--out", "u"], "no codefocus study"),
    (["userstudy", "create", "sdir", "--out", "u", "--methods", "x,y"], "unknown method 'x'"),
    (["userstudy", "serve", "udir"], "no user study"),
    (["userstudy", "serve", "udir", "--port", "0"], "--port"),
    (["userstudy", "analyze", "udir"], "no user study"),
    (["userstudy", "import", "udir", "notes.md"], "no user study"),
    (["attribute", "--model", "tiny", "--task", "humaneval/0", "--engine", "vllm"], "--engine"),
    # the command line itself
    (["nosuch"], "No such command"),
    (["attribute", "--bogus", "1"], "No such option: --bogus"),
    (["study"], "Missing option '--out'"),
]


@pytest.mark.slow  # one CLI process per bad input: about 1.5 minutes in all
@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_and_touches_nothing(workdir, data_dir, args, message):
    before = snapshot(workdir)
    result = run(args, workdir, data_dir)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("codefocus: error: ") and message in lines[0], lines[0]
    assert snapshot(workdir) == before  # no file created, changed or removed


def test_there_are_forty_bad_inputs_across_all_commands():
    commands = {args[0] for args, _ in BAD}
    assert len(BAD) >= 40
    assert {"generate", "attribute", "evaluate", "serve", "study", "report", "demo", "data"} <= (
        commands
    )
    assert {"tasks", "reproduce", "memorization", "autofocus"} <= commands


# ---------------------------------------------------------------- the safety nets


@pytest.mark.slow
def test_generate_continues_its_own_file_repairs_a_torn_line_and_replaces_with_force(
    tmp_path, data_dir
):
    samples = tmp_path / "s.jsonl"
    args = [*GEN, "--out", "s.jsonl"]
    assert run(args, tmp_path, data_dir).returncode == 0
    first = samples.read_text()
    samples.write_text(first + '{"task_id": "Hum')  # a write cut by a crash
    again = run([*args, "--format", "json"], tmp_path, data_dir)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["samples_written"] == 0
    assert samples.read_text() == first  # the torn line went, nothing else
    (tmp_path / "notes.md").write_text("notes\n")
    forced = run([*GEN, "--out", "notes.md", "--force"], tmp_path, data_dir)
    assert forced.returncode == 0, forced.stderr
    assert json.loads((tmp_path / "notes.md").read_text().splitlines()[0])["task_id"]


@pytest.mark.slow
def test_outputs_are_created_where_asked_and_piped_output_is_plain(tmp_path, data_dir):
    args = ["attribute", *TINY, "--max-new-tokens", "4"]
    made = run([*args, "--format", "json", "--out", "new/dir/x.json"], tmp_path, data_dir)
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "new" / "dir" / "x.json").read_text())["schema"] == 2
    piped = run([*args, "--methods", "occlusion,reading_first"], tmp_path, data_dir)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    top = {line.split(" top ")[0]: line for line in lines if " top 10: " in line}
    assert set(top) == {"occlusion", "reading_first"}
    assert top["occlusion"] != top["reading_first"]  # ranked words with scores, not colour


def test_every_method_failing_is_a_failed_run(data_dir, monkeypatch, capsys):
    """Exit 0 only when something useful ran: here every method fails (out of memory, say)."""
    import codefocus.api
    from codefocus.cli import main
    from codefocus.methods.perturbation import Perturbation

    def out_of_memory(self, inputs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setenv("CODEFOCUS_DATA", str(data_dir))
    monkeypatch.setattr(Perturbation, "compute", out_of_memory)
    with pytest.raises(SystemExit) as caught:
        main(["attribute", *TINY, "--max-new-tokens", "4", "--no-cache"])
    assert caught.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("codefocus: error: every method failed (occlusion: RuntimeError")
    assert codefocus.api.attribute  # the real library ran up to the methods


def test_evaluate_writes_here_never_replaces_and_takes_mbpp_ids(tmp_path, data_dir):
    source = tmp_path / "in" / "samples.jsonl"
    source.parent.mkdir()
    source.write_text(
        json.dumps({"task_id": 11, "solution": "def remove_Occ(s, ch):\n    return s\n"}) + "\n"
    )
    args = ["evaluate", "in/samples.jsonl", "--benchmark", "mbpp", "--format", "json"]
    result = run(args, tmp_path, data_dir)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["samples"] == 1 and summary["counts"] == {"failed": 1}  # evaluated, not invalid
    assert (tmp_path / "samples.jsonl_results.jsonl").is_file()
    assert not (source.parent / "samples.jsonl_results.jsonl").exists()
    again = run(args, tmp_path, data_dir)
    assert again.returncode == 2 and "use --force" in again.stderr
    assert run([*args, "--force"], tmp_path, data_dir).returncode == 0


def test_a_finished_result_is_kept_when_writing_fails(tmp_path, monkeypatch):
    from codefocus import storage

    monkeypatch.chdir(tmp_path)

    def refuse(path, text):
        if Path(path).parent.name == "full":
            raise OSError(28, "No space left on device")
        return original(path, text)

    original = storage.write_text_atomic
    monkeypatch.setattr(storage, "write_text_atomic", refuse)
    with pytest.raises(storage.OutputError, match="the result is kept in") as caught:
        storage.write_or_keep(tmp_path / "full" / "x.html", "<p>result</p>")
    kept = Path(str(caught.value).rsplit(" ", 1)[-1])
    assert kept.read_text() == "<p>result</p>"


def test_the_server_answers_bad_requests_with_json(tmp_path):
    import threading

    from codefocus.models.loading import load_model
    from codefocus.models.server import make_server

    server = make_server(load_model("tiny"), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"
    try:
        for body in (
            {"prompt": "x " * 2000, "max_tokens": 8},  # over the context
            {"prompt": "x", "max_tokens": "many"},
            {"prompt": 5},
            [1, 2],
        ):
            request = urllib.request.Request(
                url, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=30)
            assert caught.value.code == 400
            assert json.loads(caught.value.read())["error"]["message"]
    finally:
        server.shutdown()


@pytest.mark.slow
def test_progress_shows_in_a_log_and_an_interruption_says_how_to_resume(tmp_path, data_dir):
    env = {
        **os.environ,
        "CODEFOCUS_DATA": str(data_dir),
        "CODEFOCUS_PROGRESS_SECONDS": "0",
        # nothing read from the session's generation cache, which earlier tests may have filled
        # with these very generations (the study then ended before the interruption came)
        "CODEFOCUS_GENERATION_CACHE": "off",
    }
    with open(tmp_path / "log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "codefocus", "study", "--model", "tiny", "--methods",
             "reading_first", "--limit", "164", "--max-new-tokens", "64", "--out", "s"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            # a shell's background job ignores SIGINT, and Python keeps an ignored SIGINT
            # ignored: the child must start with the default, as a terminal's command does
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        deadline = time.time() + 240
        # enough work (164 tasks, ~15 s) that the interruption cannot come after the end
        while time.time() < deadline and "[codefocus] tiny:" not in (tmp_path / "log").read_text():
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    text = (tmp_path / "log").read_text()
    assert "[codefocus] tiny: " in text  # plain progress lines, not a terminal bar
    assert "re-running the same command resumes" in text.splitlines()[-1]
    assert "Traceback" not in text


def test_python_api_raises_typed_errors(data_dir, monkeypatch):
    from codefocus import Attribution, InvalidArgumentError, SchemaError, attribute

    monkeypatch.setenv("CODEFOCUS_DATA", str(data_dir))
    result = attribute(
        "tiny", "humaneval/0", "reading_first", settings=None, completion="    return 1\n"
    )
    assert result.task_id == "HumanEval/0"  # the reference means the task, not the text
    with pytest.raises(InvalidArgumentError, match="list of integers"):
        result.alignment(5)
    with pytest.raises(SchemaError):
        Attribution.from_json('{"schema": 2, "model": "x"')
    with pytest.raises(SchemaError):
        Attribution.from_json('{"schema": 2, "model": "x"}')
    with pytest.raises(InvalidArgumentError, match="no method given"):
        attribute("tiny", "x", "")
