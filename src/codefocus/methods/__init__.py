"""Attribution methods, found by name through one registry.

Every method is a named instance defined in its family's module (``grep reading_first`` finds
it); groups are derived from the families; the study's ten white-box methods are listed once
(``STUDY_WHITEBOX``). ``resolve_methods(names, **options)`` gives instances configured with the
options they take (``shap_samples``, ``shap_l1_reg``, ``partition_evals``, ``ig_steps``,
``gradient_chunk``, ``loo_mode``, ``perturb_units``, ``contextcite_samples``,
``contextcite_alpha``, ``hierarchical_units``, ``hierarchical_top``, ``hierarchical_coverage``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence

from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.methods import (
    attention,
    contextcite,
    gradient,
    hierarchical,
    likelihood,
    perturbation,
)
from codefocus.methods.base import IDENTITY_FIELDS, Method, MethodInputs, TokenScores

METHODS: tuple[Method, ...] = (
    *attention.METHODS,
    *gradient.METHODS,
    *perturbation.METHODS,
    *likelihood.METHODS,
    *contextcite.METHODS,
    *hierarchical.METHODS,
)
REGISTRY: dict[str, Method] = {m.name: m for m in METHODS}
if len(REGISTRY) != len(METHODS):
    raise RuntimeError("two methods share a name")

# Kou et al.'s ten white-box methods (RQ1), in the paper's order
STUDY_WHITEBOX: tuple[str, ...] = (
    attention.reading_first.name,
    attention.reading_last.name,
    attention.reading_all.name,
    attention.coding_first.name,
    attention.coding_last.name,
    attention.coding_all.name,
    gradient.saliency_reading.name,
    gradient.saliency_coding.name,
    gradient.inputxgradient_reading.name,
    gradient.inputxgradient_coding.name,
)


def _family(name: str) -> Callable[[], list[str]]:
    return lambda: [m.name for m in METHODS if m.family == name]


GROUPS: dict[str, Callable[[], list[str]]] = {
    "all-whitebox": lambda: list(STUDY_WHITEBOX),
    "all": lambda: list(REGISTRY),
    "kou2024-compat": _family("attention-compat"),
    "attention": _family("attention"),
    "gradient": _family("gradient"),
    "perturbation": _family("perturbation"),
    "likelihood": _family("likelihood"),
}

# Old group names, accepted (never listed) until the next release. ``study`` named the ten
# white-box methods, but ``--scope study`` names the study's scored words: a scope, not methods.
RENAMED_GROUPS: dict[str, str] = {"study": "all-whitebox"}

OPTION_NAMES: frozenset[str] = frozenset(
    f.name for m in METHODS for f in dataclasses.fields(m) if f.name not in IDENTITY_FIELDS
)


def available_methods() -> dict[str, Method]:
    """Every registered method by name (default options)."""
    return dict(REGISTRY)


def method_names(names: Sequence[str] | str) -> list[str]:
    """Method names for names or group names (``all-whitebox``, ``attention``, ...), in order,
    each once."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise InvalidArgumentError(f"methods are names, comma-separated or a list; got {names!r}")
    chosen: list[str] = []
    for name in names:
        if name in RENAMED_GROUPS:
            warnings.warn(
                f"the method group {name!r} is now {RENAMED_GROUPS[name]!r}; "
                "the old name goes in the next release",
                DeprecationWarning,
                stacklevel=2,
            )
            name = RENAMED_GROUPS[name]
        if name in GROUPS:
            chosen += GROUPS[name]()
        elif name in REGISTRY:
            chosen.append(name)
        else:
            known = ", ".join([*GROUPS, *REGISTRY])
            raise UnknownNameError(f"unknown method {name!r}: choose from {known}")
    return list(dict.fromkeys(chosen))


def resolve_methods(names: Sequence[str] | str, **options) -> list[Method]:
    """Method instances for names or group names, each given the ``options`` it takes.

    An option no method has is an error; an option that only other methods take is ignored
    (``shap_samples`` does not concern ``reading_first``)."""
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise InvalidArgumentError(
            f"unknown method option {sorted(unknown)[0]!r}: "
            f"choose from {', '.join(sorted(OPTION_NAMES))}"
        )
    resolved = []
    for name in method_names(names):
        method = REGISTRY[name]
        own = {f.name for f in dataclasses.fields(method)}
        given = {k: v for k, v in options.items() if k in own and v is not None}
        resolved.append(dataclasses.replace(method, **given) if given else method)
    return resolved


def contrast_refusal(*methods: Method) -> str:
    """Why ``methods`` cannot explain a contrast: one line naming them and the methods that can."""
    able = [m.name for m in METHODS if getattr(m, "takes_contrast", False)]
    names = [
        f"{m.name} with coding_steps='one'"
        if getattr(m, "stage", None) == "coding" and getattr(m, "coding_steps", "") == "one"
        else m.name
        for m in methods
    ]
    return (
        f"{', '.join(names)} cannot take a contrast: only {', '.join(able)} explain "
        "log p(code) - log p(contrast)"
    )


__all__ = [
    "GROUPS",
    "METHODS",
    "REGISTRY",
    "STUDY_WHITEBOX",
    "Method",
    "MethodInputs",
    "TokenScores",
    "available_methods",
    "contrast_refusal",
    "method_names",
    "resolve_methods",
]
