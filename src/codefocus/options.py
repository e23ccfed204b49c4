"""One options object for every attribution: ``attribute``, a study and a probe share it.

``AttributionOptions`` holds what decides how a method runs, beyond which methods and which task:
the protocol (and the fields of it a run changes), how token scores become word scores, the
regeneration engine and its batch, the methods' own options, where the model runs and in what
precision, and a memory budget. It is frozen, checked once where it is made (a bad value is one
``InvalidArgumentError`` line naming the option and the value, before any model loads) and
JSON round-trippable (``to_dict`` / ``from_dict``).

``device`` and ``dtype`` (``auto`` or a choice: ``codefocus.models.placement``) are where a model
given by name is loaded and in what precision; a result records the device and dtype the model
ran in. ``max_memory`` reaches the methods as their option of that name.

``WithOptions`` is the base of the study's and the probe's configuration: they hold one
``AttributionOptions`` and read and write its fields as flat keys, as they did before it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from codefocus.errors import CodefocusError, InvalidArgumentError
from codefocus.models.placement import (
    check_device,
    check_dtype,
    parse_memory,
    placement_of,
)
from codefocus.protocols import Protocol
from codefocus.serialization import JsonRecord, from_jsonable, to_jsonable

log = logging.getLogger(__name__)

AGGREGATIONS = ("sum", "mean", "max")
ENDPOINT_PREFIXES = ("http://", "https://", "openai:")  # as models.loading reads a model name


def _checked(option: str, check: Callable[..., Any], *args, **kwargs) -> Any:
    """``check(*args, **kwargs)``; its error names ``option`` (``dtype: unknown dtype ...``)
    and carries it as ``error.option``, so the command line can name its flag instead."""
    try:
        return check(*args, **kwargs)
    except CodefocusError as error:
        named = type(error)(f"{option}: {error}")
        named.option = option  # type: ignore[attr-defined]
        raise named from None


def _invalid(option: str, message: str) -> InvalidArgumentError:
    error = InvalidArgumentError(f"{option}: {message}")
    error.option = option  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class AttributionOptions(JsonRecord):
    """How an attribution runs (see the module docstring).

    Fields:
        protocol: a protocol name (``codefocus``, ``kou2024``, ``kou2024:exclude_sink=true``) or
            a ``Protocol``; ``scope``, ``exclude_sink``, ``substitutes`` and ``similarity``
            change that field of it (``None``: as the protocol says).
        aggregation: token scores onto a word: ``sum``, ``mean`` or ``max``.
        engine: regenerating perturbed prompts: ``draft``, ``plain`` or ``llama.cpp``.
        batch_size: prompts regenerated together.
        method_options: the methods' own options (``shap_samples``, ``shap_l1_reg``,
            ``ig_steps``, ``gradient_chunk``, ...), recorded in ``settings["methods"]``.
        device, dtype: where the model is loaded and in what precision.
        max_memory: a memory budget in bytes (``"4GB"`` is read too) for the methods' batches.
    """

    protocol: str | Protocol = "codefocus"
    aggregation: str = "sum"
    substitutes: str | None = None
    similarity: str | None = None
    scope: str | None = None
    exclude_sink: bool | None = None
    engine: str = "draft"
    batch_size: int = 8
    method_options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "auto"
    max_memory: int | None = None

    def __post_init__(self) -> None:
        from codefocus.data.units import scored_range
        from codefocus.generation.registry import get_engine
        from codefocus.methods.substitutes import check_provider
        from codefocus.metrics.similarity import check_similarity
        from codefocus.protocols import get_protocol

        if isinstance(self.protocol, dict):  # a recorded protocol, read back from JSON
            object.__setattr__(self, "protocol", _checked("protocol", get_protocol, self.protocol))
        elif not isinstance(self.protocol, str | Protocol):
            raise _invalid("protocol", f"a protocol is a name, got {self.protocol!r}")
        for name in ("substitutes", "similarity", "scope"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise _invalid(name, f"must be a name, got {getattr(self, name)!r}")
        if self.exclude_sink is not None and not isinstance(self.exclude_sink, bool):
            raise _invalid("exclude_sink", f"must be true or false, got {self.exclude_sink!r}")
        if self.aggregation not in AGGREGATIONS:
            raise _invalid(
                "aggregation",
                f"unknown aggregation {self.aggregation!r}: use {', '.join(AGGREGATIONS)}",
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise _invalid("batch_size", f"must be a positive integer, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise _invalid("batch_size", f"must be a positive integer, got {self.batch_size!r}")
        if self.scope is not None:
            _checked("scope", scored_range, "", self.scope)
        if self.similarity is not None:
            _checked("similarity", check_similarity, self.similarity)
        if self.substitutes is not None:
            _checked("substitutes", check_provider, self.substitutes)
        _checked("engine", get_engine, self.engine)
        _checked("device", check_device, self.device)
        _checked("dtype", check_dtype, self.dtype)
        object.__setattr__(
            self, "max_memory", _checked("max_memory", parse_memory, self.max_memory)
        )
        object.__setattr__(self, "method_options", self._checked_method_options())
        _checked("protocol", self.declared_protocol)

    def _checked_method_options(self) -> dict[str, Any]:
        """A copy of ``method_options``, each checked by the methods that take it."""
        from codefocus.methods import OPTION_NAMES, resolve_methods

        if not isinstance(self.method_options, dict):
            raise _invalid("method_options", f"must be a mapping, got {self.method_options!r}")
        for name, value in self.method_options.items():
            if name not in OPTION_NAMES:
                _checked("method_options", resolve_methods, "all", **{str(name): value})
            _checked(str(name), resolve_methods, "all", **{str(name): value})
        return dict(self.method_options)

    def __hash__(self) -> int:  # method_options is a dict: hash the JSON form
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    # ---- building -------------------------------------------------------------------------
    def changed(self, **changes: Any) -> AttributionOptions:
        """These options with fields changed; ``shap_l1_reg`` (the old keyword and study key) is
        a method option."""
        if "shap_l1_reg" in changes:
            l1_reg = changes.pop("shap_l1_reg")
            method_options = {**changes.get("method_options", self.method_options)}
            if l1_reg is not None:
                method_options["shap_l1_reg"] = l1_reg
            changes["method_options"] = method_options
        unknown = sorted(set(changes) - set(OPTION_FIELDS))
        if unknown:
            raise TypeError(f"unknown attribution option {unknown[0]!r}")
        return dataclasses.replace(self, **changes) if changes else self

    def flat(self, always: Sequence[str] = ()) -> dict:
        """The options as flat keys (a study's or a probe's stored form): ``shap_l1_reg`` out of
        the method options; the fields in ``always`` and those not at their default."""
        data = to_jsonable(self)
        method_options = dict(data["method_options"])
        data["method_options"] = method_options
        data["shap_l1_reg"] = method_options.pop("shap_l1_reg", "none")
        defaults = {**to_jsonable(AttributionOptions()), "shap_l1_reg": "none"}
        return {k: v for k, v in data.items() if k in always or v != defaults.get(k)}

    # ---- what they decide -----------------------------------------------------------------
    def declared_protocol(self) -> Protocol:
        """The protocol named, with the fields these options set changed."""
        from codefocus.protocols import get_protocol

        changes = {
            key: getattr(self, key)
            for key in ("scope", "exclude_sink", "substitutes", "similarity")
            if getattr(self, key) is not None
        }
        return get_protocol(self.protocol).derive(**changes)

    def run_protocol(self, methods: Sequence[str] | str) -> Protocol:
        """The protocol as it runs here for ``methods`` (``effective_protocol``)."""
        return effective_protocol(self.declared_protocol(), methods)

    def method_arguments(self) -> dict[str, Any]:
        """The options every method instance is resolved with."""
        from codefocus.methods import OPTION_NAMES

        arguments = dict(self.method_options)
        if self.max_memory is not None:
            # max_memory: passed to methods via method_options (once a method takes it)
            if "max_memory" in OPTION_NAMES:
                arguments["max_memory"] = self.max_memory
            else:
                log.info("max_memory: no method takes a memory budget yet; not used")
        return arguments

    def methods(self, names: Sequence[str] | str, protocol: Protocol | None = None) -> list:
        """Method instances for ``names`` under ``protocol`` (default: the declared one)."""
        chosen = protocol or self.declared_protocol()
        return chosen.methods(names, **self.method_arguments())

    def check_placement(self, model) -> None:
        """A loaded model is on the device and in the dtype asked for (``auto``: any)."""
        placed = placement_of(model)
        if placed and self.dtype not in ("auto", placed["dtype"]):
            raise _invalid(
                "dtype",
                f"{self.dtype!r} asked for, but {model.name} is loaded in {placed['dtype']} "
                "(give the model by name, or load it in that dtype)",
            )
        kind = self.device.partition(":")[0]
        if placed and kind != "auto" and kind != placed["device"].partition(":")[0]:
            raise _invalid(
                "device",
                f"{self.device!r} asked for, but {model.name} is on {placed['device']} "
                "(give the model by name, or load it there)",
            )

    def load_model(self, spec: str):
        """The model named ``spec``, on ``device`` in ``dtype`` (``load``)."""
        return load(spec, self.device, self.dtype)


OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AttributionOptions))
# the flat keys a study or probe file may set: the fields, and shap_l1_reg (a method option)
FLAT_KEYS: tuple[str, ...] = (*OPTION_FIELDS, "shap_l1_reg")


def build_options(options: AttributionOptions | None = None, **keywords: Any) -> AttributionOptions:
    """``options`` (default ``AttributionOptions()``) with the fields given as keywords changed
    (``None``: unchanged). ``shap_l1_reg`` is accepted, with a ``DeprecationWarning``: it is
    ``method_options={"shap_l1_reg": ...}`` now."""
    if options is not None and not isinstance(options, AttributionOptions):
        raise InvalidArgumentError(f"options must be an AttributionOptions, got {options!r}")
    given = {k: v for k, v in keywords.items() if v is not None}
    if "shap_l1_reg" in given:
        import warnings

        warnings.warn(
            "attribute(shap_l1_reg=...) is now method_options={'shap_l1_reg': ...}; the keyword "
            "goes in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
    return (options or AttributionOptions()).changed(**given)


def _option_view(name: str) -> property:
    return property(lambda self: getattr(self.options, name), doc=f"``options.{name}``")


class WithOptions(JsonRecord):
    """A frozen dataclass (``init=False``) with an ``options: AttributionOptions`` field, made
    and stored with the options' fields as flat keys, as before the options object existed:
    ``StudyConfig(scope="prompt", dtype="bfloat16")``, ``replace(config, protocol="kou2024")``
    and a file or store with ``scope = "prompt"`` all change ``options``. ``to_dict`` writes the
    fields in ``STORED_OPTIONS`` and those not at their default (a store written before a new
    option existed reads the same)."""

    DEFAULT_OPTIONS: ClassVar[dict[str, Any]] = {}
    STORED_OPTIONS: ClassVar[tuple[str, ...]] = ()
    options: AttributionOptions

    def __init__(self, **given: Any) -> None:
        flat = {key: given.pop(key) for key in FLAT_KEYS if key in given}
        options = given.pop("options", None)
        if isinstance(options, dict):
            options = AttributionOptions.from_dict(options)
        elif options is None:
            options = AttributionOptions(**self.DEFAULT_OPTIONS)
        if flat.get("shap_l1_reg") == "none":  # the flat form's "no regularisation given"
            flat.pop("shap_l1_reg")
            options = options.changed(
                method_options={
                    k: v for k, v in options.method_options.items() if k != "shap_l1_reg"
                }
            )
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]
            if spec.name == "options":
                value = options.changed(**flat)
            elif spec.name in given:
                value = given.pop(spec.name)
            elif spec.default is not dataclasses.MISSING:
                value = spec.default
            else:
                value = spec.default_factory()  # type: ignore[misc]
            object.__setattr__(self, spec.name, value)
        if given:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(given))!r}")
        self.__post_init__()

    def __post_init__(self) -> None:
        if not isinstance(self.options, AttributionOptions):
            raise InvalidArgumentError(f"options must be AttributionOptions, got {self.options!r}")

    def to_dict(self) -> dict:
        data = to_jsonable(self)
        data.pop("options")
        return {**data, **self.options.flat(self.STORED_OPTIONS)}

    @classmethod
    def from_dict(cls, data: dict):
        data = dict(data)
        flat = {key: data.pop(key) for key in FLAT_KEYS if key in data}
        record = from_jsonable(cls, data)
        return dataclasses.replace(record, **flat) if flat else record  # type: ignore[type-var]

    protocol = _option_view("protocol")
    substitutes = _option_view("substitutes")
    similarity = _option_view("similarity")
    scope = _option_view("scope")
    exclude_sink = _option_view("exclude_sink")
    device = _option_view("device")
    dtype = _option_view("dtype")

    @property
    def shap_l1_reg(self) -> str:
        """``options.method_options["shap_l1_reg"]`` (``none`` when not given)."""
        return str(self.options.method_options.get("shap_l1_reg", "none"))

    def declared_protocol(self) -> Protocol:
        """The protocol named, with the fields the options set changed."""
        return self.options.declared_protocol()


_SUBSTITUTE_NOTES: set[str] = set()


def effective_protocol(protocol: Protocol, methods: Sequence[str] | str) -> Protocol:
    """The protocol as it can run here: a masked LM that is not installed (codefocus never
    downloads one) gives way to the embedding provider, said once per process and recorded in
    the protocol's name (``kou2024+substitutes=embedding``), so every table can mark the rows."""
    from codefocus.methods.substitutes import masked_lm_available

    if not any(m.family == "perturbation" for m in protocol.methods(methods)):
        return protocol
    if masked_lm_available(protocol.substitutes):
        return protocol
    if protocol.substitutes not in _SUBSTITUTE_NOTES:
        _SUBSTITUTE_NOTES.add(protocol.substitutes)
        log.warning(
            "substitutes %s: no such masked LM installed here (codefocus downloads none); BERT "
            "masking and SHAP use the embedding provider instead, recorded as "
            "substitutes=embedding",
            protocol.substitutes,
        )
    return protocol.derive(substitutes="embedding")


def load(spec: str, device: str = "auto", dtype: str = "auto"):
    """``models.loading.load_model(spec, device, dtype)``, both checked first (a one-line error
    naming the option); an endpoint has neither, and both are then not used.

    Raises:
        InvalidArgumentError: a bad device or dtype, or a CUDA device on a machine without one.
    """
    from codefocus.models.loading import load_model

    _checked("device", check_device, device)
    _checked("dtype", check_dtype, dtype)
    if isinstance(spec, str) and spec.startswith(ENDPOINT_PREFIXES):
        if (device, dtype) != ("auto", "auto"):
            log.warning("%s is an endpoint: device and dtype are the server's", spec)
        return load_model(spec)
    check_device_here(device)
    return load_model(spec, device=device, dtype=dtype)


def check_device_here(device: str) -> None:
    """A CUDA device asked for exists on this machine (checked where a model loads, not where
    options are made: a study's options are read on other machines too)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise _invalid("device", f"{device!r} asked for, but this machine has no CUDA device")
