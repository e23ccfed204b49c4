"""What every command shares: the console, option types, and parsing of list options.

Values are checked by the library (one place each); here an error is only given the name of the
option it came from, so the one-line message says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from codefocus.errors import CodefocusError, InvalidArgumentError

console = Console()
T = TypeVar("T")

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Data directory (default: $CODEFOCUS_DATA).", show_default=False),
]
ModelOption = Annotated[
    str, typer.Option(help="default, tiny, a hub id, a directory, a .gguf or an endpoint URL")
]
MaxNewTokensOption = Annotated[int | None, typer.Option(help="Default: reference + 20.")]
BenchmarkOption = Annotated[str, typer.Option(help="humaneval, mbpp or mbpp-sanitized")]
ScopeOption = Annotated[
    str | None,
    typer.Option(
        help="Scored words: study (Kou et al.: HumanEval from def to the first >>>) or prompt "
        "(default: as the protocol says)."
    ),
]
ProtocolOption = Annotated[
    str,
    typer.Option(
        help="What the study's measurements mean: codefocus (default), kou2024 (the study's "
        "released code: comparable with its Table 2), kou2024-paper, or one derived as "
        "kou2024:field=value,..."
    ),
]
ShapRegOption = Annotated[
    str, typer.Option(help="SHAP regularisation: none (every word), aic, bic, num_features(N).")
]
MethodsOption = Annotated[str, typer.Option(help="Method names or groups, comma-separated.")]
MethodOptionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--method-option",
        help="A method's own option as NAME=VALUE, repeatable: e.g. perturb_units=line, "
        "hierarchical_top=3, loo_mode=substitute, contextcite_target=logprob, "
        "contextcite_samples=128, shap_samples=256 (each method takes the ones it has).",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="Where the model runs: auto (CUDA when available, spread over the GPUs and the CPU "
        "when the model needs it; else the CPU), cpu, cuda, cuda:N or mps."
    ),
]
DtypeOption = Annotated[
    str,
    typer.Option(
        help="The model's precision: auto (float32 on the CPU, bfloat16 or float16 on a GPU), "
        "float32, bfloat16 or float16."
    ),
]
MaxMemoryOption = Annotated[
    str | None,
    typer.Option(
        help="Memory budget for the methods' batches, e.g. 4GB, 512MB or 2GiB (default: none).",
        show_default=False,
    ),
]
VerdictsOption = Annotated[
    str,
    typer.Option(
        help="Which tasks' code is run against their tests: all; attributed (only where the "
        "attributed generation is itself testable, so nothing is generated twice: HumanEval, "
        "not MBPP under kou2024); none."
    ),
]


def named(option: str, check: Callable[..., T], *args, **kwargs) -> T:
    """Run a library check; its error names ``option`` (``--scope: unknown scope ...``)."""
    try:
        return check(*args, **kwargs)
    except CodefocusError as error:
        raise type(error)(f"{option}: {error}") from None


def _option_value(text: str) -> bool | int | float | str:
    """``true``/``false``, an integer, a number, or the text itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_method_options(values: list[str] | None, **given: Any) -> dict[str, Any] | None:
    """``--method-option NAME=VALUE`` (repeatable) with the options other flags set
    (``given``), each checked by the methods that take it; ``None`` when there are none."""
    from codefocus.methods import resolve_methods

    options = {name: value for name, value in given.items() if value is not None}
    for name, value in options.items():  # a flag of its own: its error names that flag
        named(f"--{name.replace('_', '-')}", resolve_methods, "all", **{name: value})
    parsed: dict[str, Any] = {}
    for item in values or ():
        name, equals, value = item.partition("=")
        if not equals or not name.strip() or not value.strip():
            raise InvalidArgumentError(f"--method-option: expected NAME=VALUE, got {item!r}")
        if name.strip() in options or name.strip() in parsed:
            raise InvalidArgumentError(f"--method-option: {name.strip()} is given twice")
        parsed[name.strip()] = _option_value(value.strip())
    if parsed:  # the flags' own options are checked above
        named("--method-option", resolve_methods, "all", **parsed)
    return {**options, **parsed} or None


def split(text: str) -> list[str]:
    """``a, b,,c`` -> ``['a', 'b', 'c']``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_ks(text: str, option: str = "--k") -> list[int]:
    """Comma-separated K values, each checked by ``metrics.alignment.check_k``."""
    from codefocus.metrics.alignment import check_k

    try:
        values = [int(part) for part in split(text)]
    except ValueError:
        raise InvalidArgumentError(
            f"{option}: K must be a list of integers, got {text!r}"
        ) from None
    if not values:
        raise InvalidArgumentError(f"{option}: K must be positive integers, got {text!r}")
    return [named(option, check_k, k) for k in values]


def parse_ints(text: str, option: str, what: str) -> list[int]:
    try:
        return [int(part) for part in split(text)]
    except ValueError:
        raise InvalidArgumentError(f"{option}: {what}, got {text!r}") from None


def check_scope(scope: str | None) -> str | None:
    from codefocus.data.units import scored_range

    if scope is not None:
        named("--scope", scored_range, "", scope)
    return scope


def check_protocol(protocol: str):
    """The protocol named by ``--protocol`` (a one-line error naming the option otherwise)."""
    from codefocus.protocols import get_protocol

    return named("--protocol", get_protocol, protocol)


def attribution_options(**fields: Any):
    """``AttributionOptions(**fields)`` (``None``: the option's default); a bad value is one
    error line naming its flag (``--dtype: unknown dtype 'float8' ...``)."""
    from codefocus.options import build_options, check_device_here

    try:
        options = build_options(None, **fields)
        check_device_here(options.device)  # before any work starts
        return options
    except CodefocusError as error:
        option = getattr(error, "option", None)
        if option is None:
            raise
        message = str(error).removeprefix(f"{option}: ")
        raise type(error)(f"--{option.replace('_', '-')}: {message}") from None


def check_range(option: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidArgumentError(f"{option} must be between {low} and {high}, got {value}")


def check_choice(
    option: str, value: str, choices: tuple[str, ...], renamed: dict[str, str] | None = None
) -> str:
    """``value`` if it is one of ``choices``; an old spelling in ``renamed`` (old -> new, kept
    for one release and never listed) gives its new one, with a note on stderr."""
    if renamed and value in renamed:
        note_renamed(f"{option} {value}", f"{option} {renamed[value]}")
        return renamed[value]
    if value not in choices:
        raise InvalidArgumentError(f"{option}: unknown value {value!r}: use {', '.join(choices)}")
    return value


# Old spellings (renamed options and values) are accepted, hidden from --help, until the next
# release: 0.1 -> 0.2 (see CHANGELOG.md).
def note_renamed(old: str, new: str) -> None:
    """One line on stderr: the spelling used is the old one, and which to use instead."""
    import sys

    print(
        f"codefocus: warning: {old} is now {new}; the old spelling goes in the next release",
        file=sys.stderr,
    )


def either_spelling(new: str, value: T, old: str, old_value: T | None, default: T) -> T:
    """The value of option ``new``, which is also accepted under its old spelling ``old`` (a
    hidden option whose value is ``None`` unless given)."""
    if old_value is None:
        return value
    if value != default and value != old_value:
        raise InvalidArgumentError(f"{old} is the old spelling of {new}: give only {new}")
    note_renamed(old, new)
    return old_value


def old_spelling(name: str, new: str) -> Any:
    """The hidden option that keeps ``name`` working, for one release, as ``new``."""
    return typer.Option(name, hidden=True, help=f"The old spelling of {new}.", show_default=False)


def check_positive(option: str, value: float | None, allow_zero: bool = False) -> None:
    """``value`` > 0 (or >= 0 with ``allow_zero``); ``None`` means "not given"."""
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "positive"
        raise InvalidArgumentError(f"{option} must be {least}, got {value:g}")


ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing output file that codefocus did not write."),
]
FormatOption = Annotated[
    str, typer.Option("--format", help="text (default) or json: one JSON summary line on stdout.")
]


def check_output_file(path: Path | None, force: bool = False, option: str = "--out") -> None:
    """Before any work: ``path`` can be written (its nearest existing folder is a writable
    directory) and is not a file that would be replaced without ``--force``."""
    if path is None:
        return
    from codefocus.storage import check_writable

    named(option, check_writable, path, force)


def write_output(text: str, out: Path | None) -> None:
    """``text`` to ``out`` (atomically) or to standard output. When writing fails after the work
    is done, the result goes to a fallback file and the error says where."""
    if out is None:
        print(text)
        return
    from codefocus.storage import write_or_keep

    write_or_keep(out, text)
    console.print(f"wrote {out}")


def print_json(record: dict) -> None:
    """One JSON line on stdout: the machine-readable summary of ``--format json``."""
    import json

    print(json.dumps(record, default=str), flush=True)
