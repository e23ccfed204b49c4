"""The ``codefocus`` command: a thin layer that parses options, calls the library and prints.

One module per capability (``data``, ``attribution``, ``evaluation``, ``studies``, ``lab``);
shared option types and parsing in ``options``. Every ``CodefocusError`` ends as one line on
stderr and exit status 2.
"""

from __future__ import annotations

import inspect
import sys
from typing import NoReturn

import typer

from codefocus.cli import (
    attribution,
    data,
    evaluation,
    faithfulness,
    lab,
    probes,
    studies,
    userstudy,
)
from codefocus.errors import CodefocusError

HELP = (
    "codefocus: which words of a task a code model attends to, compared with the words "
    "programmers consider essential."
)
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=HELP, pretty_exceptions_enable=False
)
app.add_typer(data.data_app, name="data")
app.add_typer(data.reproduce_app, name="reproduce")
app.add_typer(data.tasks_app, name="tasks")
app.add_typer(lab.autofocus_app, name="autofocus")
app.add_typer(userstudy.userstudy_app, name="userstudy")
app.command("attribute")(attribution.attribute_command)
app.command("models")(attribution.models_command)
app.command("serve")(attribution.serve_command)
app.command("generate")(evaluation.generate_command)
app.command("evaluate")(evaluation.evaluate_command)
app.command("study")(studies.study_command)
app.command("report")(studies.report_command)
app.command("demo")(studies.demo_command)
app.command("memorization")(lab.memorization_command)
app.command("probe")(probes.probe_command)
app.command("faithfulness")(faithfulness.faithfulness_command)


def _reflow(text: str) -> str:
    """A docstring's paragraphs, each on one line (a paragraph starting with ``\\b`` is kept
    as written, as click does)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def _reflow_help(commands: typer.Typer) -> None:
    """Every command's help from its docstring, paragraphs reflowed. typer's rich help keeps a
    docstring's line breaks in the command list and after the first paragraph, so a sentence
    would break wherever the source line did."""
    for info in commands.registered_commands:
        text = info.help or inspect.getdoc(info.callback) or ""
        info.help = _reflow(text)
        info.short_help = info.short_help or info.help.split("\n\n")[0]
    for group in commands.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def _version(value: bool) -> None:
    if value:
        from codefocus import __version__

        print(f"codefocus {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Explain what a code model pays attention to, and compare it with programmers' attention."""
    if quiet:
        from codefocus import progress

        progress.QUIET = True


RESUME_HINT = "re-running the same command resumes where it stopped"


def _fail(message: str, status: int) -> NoReturn:
    print(f"codefocus: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)


def _given(error: Exception, argv: list[str]) -> str:
    """`` (got 'two')`` for a bad option value, read back from the command line."""
    param = getattr(error, "param", None)
    for name in getattr(param, "opts", []) if param is not None else []:
        for index, arg in enumerate(argv):
            if arg == name and index + 1 < len(argv):
                return f" (got {argv[index + 1]!r})"
            if arg.startswith(name + "="):
                return f" (got {arg.split('=', 1)[1]!r})"
    return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: a bad input ends as one line on stderr and exit status 2, an interruption as
    one line (with the resume hint) and 130; only a bug shows a traceback."""
    from typer import Abort
    from typer._click.exceptions import UsageError  # typer 0.29 parses with its own click

    try:
        status = app(args=argv, prog_name="codefocus", standalone_mode=False)
    except UsageError as error:  # a bad or missing option, as parsed by click
        _fail(error.format_message() + _given(error, sys.argv[1:] if argv is None else argv), 2)
    except Abort as error:
        if isinstance(error.__cause__, EOFError):  # e.g. a truncated gzip file
            _fail(f"unexpected end of a file ({error.__cause__})", 2)
        print(f"codefocus: interrupted; {RESUME_HINT}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print(f"codefocus: interrupted; {RESUME_HINT}", file=sys.stderr)
        sys.exit(130)
    except CodefocusError as error:
        _fail(str(error), error.exit_status)
    except OSError as error:  # the machine refused: disk full, permission denied, ...
        _fail(str(error), 1)
    if status == 130:  # typer turns a KeyboardInterrupt into exit status 130
        print(f"codefocus: interrupted; {RESUME_HINT}", file=sys.stderr)
    sys.exit(status if isinstance(status, int) else 0)
