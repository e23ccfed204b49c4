"""Attribution commands: explain one task on one model; list and serve models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    DeviceOption,
    DtypeOption,
    ForceOption,
    MaxMemoryOption,
    MaxNewTokensOption,
    MethodOptionOption,
    MethodsOption,
    ModelOption,
    ProtocolOption,
    ScopeOption,
    ShapRegOption,
    attribution_options,
    check_choice,
    check_output_file,
    check_positive,
    check_range,
    console,
    either_spelling,
    named,
    old_spelling,
    parse_method_options,
    write_output,
)
from codefocus.errors import InvalidArgumentError, MethodsFailedError

FORMATS = ("text", "json", "html")
OLD_FORMATS = {"terminal": "text"}  # the old spelling, until the next release


def attribute_command(
    model: ModelOption = "default",
    task: Annotated[str | None, typer.Option(help="humaneval/N or mbpp/N")] = None,
    prompt_file: Annotated[Path | None, typer.Option(help="Your own prompt, from a file.")] = None,
    methods: MethodsOption = "all-whitebox",
    output_format: Annotated[
        str, typer.Option("--format", help="text (default), json or html")
    ] = "text",
    out: Annotated[
        Path | None, typer.Option(help="Write json/html here instead of stdout.")
    ] = None,
    force: ForceOption = False,
    k: Annotated[int, typer.Option("--k", help="How many top words to highlight.")] = 10,
    top: Annotated[int | None, old_spelling("--top", "--k")] = None,
    max_new_tokens: MaxNewTokensOption = None,
    substitutes: Annotated[
        str | None,
        typer.Option(
            help="BERT masking words from: embedding, wordnet, codemodel, mlm:<id> "
            "(default: as the protocol says)"
        ),
    ] = None,
    similarity: Annotated[
        str | None,
        typer.Option(
            help="bleu (the study's, unsmoothed), bleu-smooth, sacrebleu, codebleu "
            "(default: as the protocol says)"
        ),
    ] = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="Reuse cached generations.")
    ] = True,
    scope: ScopeOption = None,
    protocol: ProtocolOption = "codefocus",
    shap_l1_reg: ShapRegOption = "none",
    method_option: MethodOptionOption = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Regenerating perturbed prompts: draft (exact, transformers), plain, or "
            "llama.cpp (in-process, for a GGUF model; checked per task against transformers)."
        ),
    ] = "draft",
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    max_memory: MaxMemoryOption = None,
    contrast: Annotated[
        str | None,
        typer.Option(
            help="Explain why the model wrote its code and not other code: reference (the "
            "task's reference solution), a FILE of code, or - (code on stdin). Taken by "
            "loo_logprob, hierarchical_loo, saliency_coding and inputxgradient_coding.",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Which words of a task the model attended to, by each method."""
    from codefocus.api import attribute
    from codefocus.data.tasks import Task, get_task
    from codefocus.generation.records import GenerationSettings
    from codefocus.methods import resolve_methods
    from codefocus.metrics.alignment import check_k

    # every value is checked before the model loads (minutes for the default model)
    output_format = check_choice("--format", output_format, FORMATS, OLD_FORMATS)
    k = either_spelling("--k", k, "--top", top, 10)
    named("--k", check_k, k)
    check_positive("--max-new-tokens", max_new_tokens)
    if (task is None) == (prompt_file is None):
        raise InvalidArgumentError("give exactly one of --task or --prompt-file")
    options = attribution_options(
        protocol=protocol,
        scope=scope,
        substitutes=substitutes,
        similarity=similarity,
        engine=engine,
        method_options=parse_method_options(
            method_option, shap_l1_reg=shap_l1_reg if shap_l1_reg != "none" else None
        ),
        device=device,
        dtype=dtype,
        max_memory=max_memory,
    )
    chosen = named("--methods", resolve_methods, methods)
    if not chosen:
        raise InvalidArgumentError(f"--methods: no method given ({methods!r})")
    contrast_text = None if contrast is None else read_contrast(contrast, task, chosen)
    if output_format != "text":
        check_output_file(out, force)
    elif out is not None:
        raise InvalidArgumentError("--out needs --format json or html")
    subject: Task | str
    if prompt_file is not None:
        subject = read_prompt_file(prompt_file)
    else:
        subject = get_task(task or "", data, labels=options.declared_protocol().labels)
    if contrast_text == "reference" and isinstance(subject, Task):  # checked before loading
        from codefocus.api import contrast_for
        from codefocus.models.base import model_input_for

        suffix = model_input_for(subject, options.declared_protocol().mbpp_header)
        named("--contrast", contrast_for, subject, suffix[len(subject.prompt) :], "reference")
    from codefocus.generation.cache import default_cache

    generations = default_cache() if cache else None
    with console.status("loading the model and attributing..."):
        result = attribute(
            model,
            subject,
            methods,
            options,
            settings=GenerationSettings(max_new_tokens=max_new_tokens),
            cache=generations,
            contrast=contrast_text,
        )
    if output_format == "text":
        result.show(k=k, console=console)
    elif output_format == "json":
        write_output(result.to_json(), out)
    else:
        reference, verdict = _reference_and_verdict(subject, result)
        write_output(result.to_html(k=k, reference=reference, verdict=verdict), out)
    if not result.word_scores:  # nothing useful ran: say so in the exit status
        reasons = "; ".join(f"{name}: {why}" for name, why in result.failures.items())
        raise MethodsFailedError(f"every method failed ({reasons})")


def _reference_and_verdict(subject, result) -> tuple[str | None, str | None]:
    """For a benchmark task: its reference solution and the generated code's test verdict (run
    in the sandbox), shown beside the code in the HTML page."""
    from codefocus.data.tasks import Task
    from codefocus.execution.sandbox import Limits, run_python
    from codefocus.studies.runner import verdict_input, verdict_program

    if not isinstance(subject, Task):
        return None, None
    if verdict_input(subject, result.model_input) != result.model_input:
        # never test a generation that cannot pass (MBPP under the study's def function():)
        return subject.reference_solution, (
            "not tested: this input's function is not the one the tests call "
            "(a study verdict comes from a testable generation of its own)"
        )
    program, tests = verdict_program(subject, result.model_input, result.generated)
    outcome = run_python(program, tests, Limits(timeout=10.0))
    return subject.reference_solution, "passed" if outcome.passed else outcome.reason


def read_contrast(value: str, task: str | None, methods: list) -> str:
    """``--contrast``: ``reference`` (kept, for a task), ``-`` (stdin) or a file of code, checked
    before any model loads, as is that a chosen method can take it."""
    import sys

    from codefocus.api import takes_contrast
    from codefocus.methods import contrast_refusal

    if not any(takes_contrast(m) for m in methods):
        raise InvalidArgumentError(f"--contrast: {contrast_refusal(*methods)}")
    if value == "reference":
        if task is None:
            raise InvalidArgumentError(
                "--contrast reference needs --task (a benchmark task has a reference solution); "
                "for --prompt-file give a file of code or -"
            )
        return value
    if value == "-":
        text, where = sys.stdin.read(), "stdin"
    else:
        path = Path(value)
        if not path.is_file():
            raise InvalidArgumentError(
                f"--contrast: no file {value!r}: give reference, a file of code or - (stdin)"
            )
        try:
            text, where = path.read_bytes().decode("utf-8"), str(path)
        except UnicodeDecodeError:
            raise InvalidArgumentError(f"--contrast: {path} is not UTF-8 text") from None
    if "\x00" in text or not text.strip():
        raise InvalidArgumentError(f"--contrast: {where} holds no code")
    return text


def read_prompt_file(path: Path) -> str:
    """A prompt file's text: UTF-8, not empty."""
    from codefocus.errors import DataError

    if not path.is_file():
        raise DataError(f"--prompt-file: file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--prompt-file: {path} is not UTF-8 text") from None
    if "\x00" in text:
        raise DataError(f"--prompt-file: {path} is a binary file, not a prompt")
    if not text.strip():
        raise DataError(f"--prompt-file: {path} is empty")
    return text


def models_command() -> None:
    """List the models available offline and where they are cached."""
    from rich.table import Table

    from codefocus.models.packaged import status

    table = Table(title="models")
    for column in ("name", "model", "packages", "cache"):
        table.add_column(column, overflow="fold")
    info = status()
    table.add_row(
        info["name"], info["model"], info["packages"], str(info["cache"] or "not converted yet")
    )
    table.add_row("tiny / tiny-gpt2", "random weights, built in code", "always", "-")
    table.add_row("<hub id | dir | .gguf>", "any Hugging Face causal LM", "needs the files", "-")
    console.print(table)


def serve_command(
    model: ModelOption = "default",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8000,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
) -> None:
    """Serve a white-box model over an OpenAI-compatible API (/v1/completions, chat)."""
    check_range("--port", port, 0, 65535)
    options = attribution_options(device=device, dtype=dtype)
    from codefocus.models.server import make_server

    loaded = options.load_model(model)
    try:
        server = make_server(loaded, host, port)
    except OSError as error:
        raise InvalidArgumentError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    console.print(f"serving {model} on http://{host}:{server.server_address[1]}/v1")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
