"""Study protocols: everything that decides whether two alignment numbers measure the same thing.

A protocol fixes what is ranked (the model's tokens or words), the scored part of the prompt and
the attention sink, how the programmer labels are read, the model's input per benchmark and the
generation budget, what each of the study's method names computes, and the perturbation methods'
substitutes, similarity and SHAP background. Every result records the protocol it ran under
(``settings["protocol"]``), so a number can always be traced to its definition.

Built in:

* ``kou2024`` — the study's released code, exactly as far as it can run here. Only its numbers are
  comparable with the study's Table 2: model tokens ranked; self-attention from layer 0's heads
  (first / last / summed) on one row (the first generated position for READING, the end of the
  function for CODING); gradients of the first (READING) or the last (CODING) generated token;
  the first position scored like any other; labels as stored (HumanEval offsets on the
  whitespace-reduced prompt, which is then also the model's input; MBPP inclusive ends used as
  half-open); BERT masking with a masked LM's top-1 fill; SHAP over the single-mask background.
* ``kou2024-paper`` — the paper's text where it differs from the released code: first / last /
  all *layers*, heads summed, CODING summed over the generated steps (gradients too).
* ``codefocus`` — this toolkit's defaults: words ranked, repaired labels on the released prompts,
  the attention sink not scored, embedding substitutes, SHAP against an all-absent background.

Derive your own with ``get_protocol("kou2024").derive(exclude_sink=True)`` or, on the command line,
``--protocol kou2024:exclude_sink=true,units=words``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.serialization import JsonRecord

# the study's file names for the two perturbation methods, and codefocus's
STUDY_METHOD_NAMES = {"bert_masking": "bert_perturbation", "shap": "shap_perturbation"}
CODEFOCUS_METHOD_NAMES = {v: k for k, v in STUDY_METHOD_NAMES.items()}

_CHOICES: dict[str, tuple[str, ...]] = {
    "units": ("tokens", "words"),
    "scope": ("study", "prompt"),
    "labels": ("stored", "repaired"),
    "attention": ("layer0-heads", "layers"),
    "attention_rows": ("one", "summed"),
    "gradient_steps": ("one", "summed"),
    "shap_background": ("single-mask", "absent"),
}


@dataclass(frozen=True)
class Protocol(JsonRecord):
    """One named definition of the study's measurements (see the module docstring).

    Fields:
        units: ``tokens`` ranks the model's own tokens for the white-box methods (perturbation
            methods always rank words); ``words`` sums token scores onto NLTK words first.
        scope: ``study`` scores HumanEval from ``def`` to the first ``>>>``; ``prompt`` all of it.
        exclude_sink: attention methods leave the first input position unscored.
        labels: ``stored`` reads the programmer spans as the study did (and gives HumanEval the
            label file's whitespace-reduced prompt); ``repaired`` moves them onto the released
            prompt and fixes their offsets.
        mbpp_header: appended to an MBPP task's text to make the model's input.
        budget_extra: new tokens = tokens of the reference solution + this.
        attention: ``layer0-heads`` (released: first = head 0, last = the last head, all = their
            sum, of layer 0) or ``layers`` (paper: first / last / all layers, heads summed).
        attention_rows: ``one`` query row per stage (released) or the rows ``summed`` (READING:
            every prompt position; CODING: every generated step).
        gradient_steps: CODING gradients of the last generated token (``one``) or summed over
            every step (``summed``); READING is always the first generated token.
        substitutes: BERT masking's and SHAP's replacement words (``mlm:<id or dir>``,
            ``embedding``, ``wordnet``, ``codemodel``).
        similarity: code similarity behind 1 - similarity.
        shap_background: ``single-mask`` (released) or ``absent`` (all words replaced).
    """

    name: str
    units: str
    scope: str
    exclude_sink: bool
    labels: str
    mbpp_header: str
    budget_extra: int
    attention: str
    attention_rows: str
    gradient_steps: str
    substitutes: str
    similarity: str
    shap_background: str

    def __post_init__(self) -> None:
        for key, choices in _CHOICES.items():
            value = getattr(self, key)
            if value not in choices:
                raise InvalidArgumentError(
                    f"protocol {self.name}: {key}={value!r} is not one of {', '.join(choices)}"
                )
        if not isinstance(self.exclude_sink, bool):
            raise InvalidArgumentError(f"protocol {self.name}: exclude_sink must be true or false")
        if not isinstance(self.budget_extra, int) or self.budget_extra < 0:
            raise InvalidArgumentError(
                f"protocol {self.name}: budget_extra must be an integer >= 0, "
                f"got {self.budget_extra!r}"
            )
        if (self.attention == "layer0-heads") != (self.attention_rows == "one"):
            raise InvalidArgumentError(
                f"protocol {self.name}: layer0-heads attention reads one row and layers "
                "attention sums rows (attention and attention_rows go together)"
            )
        from codefocus.methods.substitutes import check_provider
        from codefocus.metrics.similarity import check_similarity

        check_provider(self.substitutes)
        check_similarity(self.similarity)

    @property
    def comparable_with_study(self) -> bool:
        """Whether numbers under this protocol can stand beside the study's Table 2."""
        return self == BUILTIN["kou2024"]

    def derive(self, name: str | None = None, **changes) -> Protocol:
        """This protocol with named fields changed (``name`` defaults to ``base+field=value``)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidArgumentError(
                f"unknown protocol field {sorted(unknown)[0]!r}: choose from "
                f"{', '.join(f.name for f in dataclasses.fields(self) if f.name != 'name')}"
            )
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if not changed:
            return self if name is None else dataclasses.replace(self, name=name)
        label = name or self.name + "+" + ",".join(f"{k}={v}" for k, v in changed.items())
        return dataclasses.replace(self, name=label, **changed)

    # ---- what the protocol decides --------------------------------------------------------
    def method(self, name: str, **options):
        """The method instance a study method name computes under this protocol.

        Names are codefocus's (``reading_first``, ``bert_masking``, ``shap``) or the study's file
        names (``bert_perturbation``, ``shap_perturbation``); the instance keeps the name asked
        for, so results stay keyed as the caller named them."""
        from codefocus.methods import resolve_methods
        from codefocus.methods.attention import CompatAttention, SelfAttention
        from codefocus.methods.gradient import Gradient

        base_name = CODEFOCUS_METHOD_NAMES.get(name, name)
        (method,) = resolve_methods([base_name], **options)
        if name != base_name:
            method = dataclasses.replace(method, name=name)
        if isinstance(method, SelfAttention) and self.attention == "layer0-heads":
            return CompatAttention(method.name, stage=method.stage, heads=method.layers)
        if isinstance(method, Gradient) and method.stage == "coding":
            return dataclasses.replace(method, coding_steps=self.gradient_steps)
        if base_name == "shap":
            given = options.get("shap_background")
            return dataclasses.replace(
                method,
                shap_background=given or self.shap_background,  # type: ignore[call-arg]
            )
        return method

    def methods(self, names, **options) -> list:
        """Instances for method or group names, in order (``resolve_methods`` under this
        protocol)."""
        from codefocus.methods import method_names

        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        expanded: list[str] = []
        for name in names:
            if name in CODEFOCUS_METHOD_NAMES:
                expanded.append(name)
            else:
                expanded += method_names([name])
        return [self.method(n, **options) for n in dict.fromkeys(expanded)]


KOU2024 = Protocol(
    name="kou2024",
    units="tokens",
    scope="study",
    exclude_sink=False,
    labels="stored",
    mbpp_header="\ndef function():",
    budget_extra=20,
    attention="layer0-heads",
    attention_rows="one",
    gradient_steps="one",
    substitutes="mlm:bert-base-uncased",
    similarity="bleu",
    shap_background="single-mask",
)
KOU2024_PAPER = KOU2024.derive(
    name="kou2024-paper", attention="layers", attention_rows="summed", gradient_steps="summed"
)
CODEFOCUS = Protocol(
    name="codefocus",
    units="words",
    scope="study",
    exclude_sink=True,
    labels="repaired",
    mbpp_header="\ndef function():",
    budget_extra=20,
    attention="layers",
    attention_rows="summed",
    gradient_steps="summed",
    substitutes="embedding",
    similarity="bleu",
    shap_background="absent",
)
BUILTIN: dict[str, Protocol] = {p.name: p for p in (KOU2024, KOU2024_PAPER, CODEFOCUS)}
DEFAULT_PROTOCOL = "codefocus"


def _parse_value(key: str, text: str):
    if key in ("exclude_sink",):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise InvalidArgumentError(f"protocol field {key} must be true or false, got {text!r}")
    if key == "budget_extra":
        try:
            return int(text)
        except ValueError:
            raise InvalidArgumentError(
                f"protocol field budget_extra must be an integer, got {text!r}"
            ) from None
    return text


def get_protocol(spec: str | Protocol | dict | None = None) -> Protocol:
    """A protocol by name (``kou2024``, ``kou2024-paper``, ``codefocus``), a derived one
    (``kou2024:exclude_sink=true,units=words``), a recorded one (its dict), or itself."""
    if spec is None:
        return BUILTIN[DEFAULT_PROTOCOL]
    if isinstance(spec, Protocol):
        return spec
    if isinstance(spec, dict):
        try:
            return Protocol.from_dict(spec)
        except (TypeError, ValueError, KeyError) as error:
            raise InvalidArgumentError(f"not a recorded protocol: {error}") from None
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"a protocol is a name, got {spec!r}")
    base, _, changes = spec.strip().partition(":")
    if base not in BUILTIN:
        raise UnknownNameError(f"unknown protocol {base!r}: choose from {', '.join(BUILTIN)}")
    protocol = BUILTIN[base]
    if not changes:
        return protocol
    fields: dict = {}
    for item in changes.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(
                f"protocol {spec!r}: write changes as field=value, comma-separated"
            )
        fields[key.strip()] = _parse_value(key.strip(), value.strip())
    return protocol.derive(**fields)
