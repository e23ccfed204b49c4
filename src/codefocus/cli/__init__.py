"""The ``codefocus`` command: a thin layer that parses options, calls the library and prints.

One module per capability (``data``, ``attribution``, ``evaluation``, ``studies``, ``lab``);
shared option types and parsing in ``options``. Every ``CodefocusError`` ends as one line on
stderr and exit status 2.
"""

from __future__ import annotations

import sys

import typer

from codefocus.cli import attribution, data, evaluation, lab, studies
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
app.command("attribute")(attribution.attribute_command)
app.command("models")(attribution.models_command)
app.command("serve")(attribution.serve_command)
app.command("generate")(evaluation.generate_command)
app.command("evaluate")(evaluation.evaluate_command)
app.command("study")(studies.study_command)
app.command("report")(studies.report_command)
app.command("demo")(studies.demo_command)
app.command("memorization")(lab.memorization_command)


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
) -> None:
    """Explain what a code model pays attention to, and compare it with programmers' attention."""


def main() -> None:
    """Entry point: turn project errors into one line on stderr and exit status 2."""
    try:
        app()
    except CodefocusError as error:
        print(f"codefocus: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("codefocus: interrupted", file=sys.stderr)
        sys.exit(130)
