"""What a faithfulness evaluation returns: typed, JSON round-trip (``JsonRecord``).

The curves are stored raw — ``log p(code | prompt variant)`` in nats, summed over the code's
tokens — and every metric is derived from them, so a stored result can be re-read under another
summary without recomputing anything. Following ERASER (DeYoung et al., 2020):

* comprehensiveness(k) = log p(code | prompt) − log p(code | prompt without the top-k words):
  how much the model's belief in its own code drops when the words a method ranks highest are
  removed (higher: more faithful);
* sufficiency(k) = log p(code | prompt) − log p(code | only the top-k words kept): how much is
  lost when only those words remain (lower: more faithful);
* AOPC (area over the perturbation curve, Samek et al., 2017) = the mean of comprehensiveness
  over k = 1…K; ``aopc_sufficiency`` the same mean of sufficiency.

The controls are the same curves for random rankings (averaged over several seeded orders) and,
per method, for its own lowest-ranked words. ``per_token`` divides by the code's token count,
so tasks with long code do not dominate a mean over tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from codefocus.errors import UnknownNameError
from codefocus.serialization import JsonRecord


@dataclass
class MethodFaithfulness(JsonRecord):
    """One ranking's curves on one task (a method's, or the random control's)."""

    method: str
    ks: list[int]
    deletion: list[float]  # log p(code | prompt without the top-k words), k in ks
    insertion: list[float]  # log p(code | only the top-k words kept)
    lowest_deletion: list[float] = field(default_factory=list)  # without the bottom-k words
    code_changed: bool | None = None  # whether greedy code changes with the top-K left out
    lds: float | None = None  # linear datamodeling score on held-out ablations

    def comprehensiveness(self, full: float) -> np.ndarray:
        return full - np.asarray(self.deletion, dtype=float)

    def sufficiency(self, full: float) -> np.ndarray:
        return full - np.asarray(self.insertion, dtype=float)

    def lowest_comprehensiveness(self, full: float) -> np.ndarray:
        return full - np.asarray(self.lowest_deletion, dtype=float)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


@dataclass
class Faithfulness(JsonRecord):
    """How faithful each method's ranking of a task's words is to the model's own likelihood."""

    model: str
    task_id: str | None
    k: int  # the curves run over k = 1..min(k, words)
    perturbation: str  # delete | substitute: how a word is left out
    full: float  # log p(code | prompt), nats summed over the code's tokens
    code_tokens: int | None  # the code's token count (None where the model cannot tell)
    words: int
    methods: dict[str, MethodFaithfulness]
    random: MethodFaithfulness  # the mean curves of ``random_orders`` seeded random rankings
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def method(self, name: str) -> MethodFaithfulness:
        if name == "random":
            return self.random
        if name not in self.methods:
            raise UnknownNameError(
                f"no faithfulness for method {name!r}: evaluated {', '.join(self.methods)}"
            )
        return self.methods[name]

    def scale(self, per_token: bool) -> float:
        return float(self.code_tokens) if per_token and self.code_tokens else 1.0

    def aopc(self, name: str, per_token: bool = True) -> float:
        """Mean comprehensiveness over k = 1..K (nats, per code token by default)."""
        curve = self.method(name).comprehensiveness(self.full)
        return _mean(curve) / self.scale(per_token)

    def aopc_sufficiency(self, name: str, per_token: bool = True) -> float:
        return _mean(self.method(name).sufficiency(self.full)) / self.scale(per_token)

    def lowest_aopc(self, name: str, per_token: bool = True) -> float:
        """The control: mean comprehensiveness when the method's lowest-ranked words go."""
        curve = self.method(name).lowest_comprehensiveness(self.full)
        return _mean(curve) / self.scale(per_token)

    def summary(self, per_token: bool = True) -> dict[str, dict]:
        """Per method (and ``random``): AOPC, AOPC of sufficiency, the lowest-ranked control,
        whether the code changed, and the LDS."""
        rows = {}
        for name in [*self.methods, "random"]:
            entry = self.method(name)
            rows[name] = {
                "aopc": self.aopc(name, per_token),
                "aopc_sufficiency": self.aopc_sufficiency(name, per_token),
                "lowest_aopc": self.lowest_aopc(name, per_token) if entry.lowest_deletion else None,
                "code_changed": entry.code_changed,
                "lds": entry.lds,
            }
        return rows

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Faithfulness:
        return cls.from_dict(json.loads(text))
