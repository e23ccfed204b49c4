"""Attribution commands: explain one task on one model; list and serve models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    MaxNewTokensOption,
    MethodsOption,
    ModelOption,
    ScopeOption,
    ShapRegOption,
    check_choice,
    check_scope,
    console,
    named,
    write_output,
)
from codefocus.errors import InvalidArgumentError

FORMATS = ("terminal", "json", "html")


def attribute_command(
    model: ModelOption = "default",
    task: Annotated[str | None, typer.Option(help="humaneval/N or mbpp/N")] = None,
    prompt_file: Annotated[Path | None, typer.Option(help="Your own prompt, from a file.")] = None,
    methods: MethodsOption = "all-whitebox",
    output_format: Annotated[
        str, typer.Option("--format", help="terminal, json or html")
    ] = "terminal",
    out: Annotated[
        Path | None, typer.Option(help="Write json/html here instead of stdout.")
    ] = None,
    k: Annotated[int, typer.Option(help="Top-K words to highlight.")] = 10,
    max_new_tokens: MaxNewTokensOption = None,
    substitutes: Annotated[
        str, typer.Option(help="BERT masking words from: embedding, wordnet, codemodel, mlm:<id>")
    ] = "embedding",
    similarity: Annotated[
        str, typer.Option(help="bleu (the study's, unsmoothed), bleu-smooth, sacrebleu, codebleu")
    ] = ("bleu"),
    no_cache: Annotated[bool, typer.Option(help="Do not reuse cached generations.")] = False,
    scope: ScopeOption = "study",
    shap_l1_reg: ShapRegOption = "none",
    data: DataOption = None,
) -> None:
    """Which words of a task the model attended to, by each method."""
    from codefocus.api import attribute
    from codefocus.data.tasks import Task, get_task
    from codefocus.errors import DataError
    from codefocus.methods import resolve_methods
    from codefocus.metrics.alignment import check_k
    from codefocus.metrics.similarity import check_similarity
    from codefocus.models.base import GenerationSettings

    # every value is checked before the model loads (minutes for the default model)
    check_choice("--format", output_format, FORMATS)
    named("--k", check_k, k)
    if (task is None) == (prompt_file is None):
        raise InvalidArgumentError("give exactly one of --task or --prompt-file")
    check_scope(scope)
    named("--methods", resolve_methods, methods)
    named("--shap-l1-reg", resolve_methods, "shap", shap_l1_reg=shap_l1_reg)
    named("--similarity", check_similarity, similarity)
    subject: Task | str
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise DataError(f"--prompt-file: file not found: {prompt_file}")
        subject = prompt_file.read_text(encoding="utf-8")
    else:
        subject = get_task(task or "", data)
    from codefocus.models.cache import GenerationCache
    from codefocus.models.packaged import cache_dir

    cache = None if no_cache else GenerationCache(cache_dir() / "generations.sqlite")
    with console.status("loading the model and attributing..."):
        result = attribute(
            model,
            subject,
            methods,
            settings=GenerationSettings(max_new_tokens=max_new_tokens),
            substitutes=substitutes,
            similarity=similarity,
            cache=cache,
            scope=scope,
            shap_l1_reg=shap_l1_reg,
        )
    if output_format == "terminal":
        result.show(k=k, console=console)
        return
    write_output(result.to_json() if output_format == "json" else result.to_html(k=k), out)


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
) -> None:
    """Serve a white-box model over an OpenAI-compatible API (/v1/completions, chat)."""
    from codefocus.models.loading import load_model
    from codefocus.models.server import make_server

    loaded = load_model(model)
    try:
        server = make_server(loaded, host, port)
    except OSError as error:
        raise InvalidArgumentError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    console.print(f"serving {model} on http://{host}:{server.server_address[1]}/v1")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
