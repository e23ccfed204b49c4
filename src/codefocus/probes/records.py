"""What a probe run stores and returns: one ``ProbeRecord`` per probe, a ``ProbeSummary`` per
run."""

from __future__ import annotations

from dataclasses import dataclass, field

from codefocus.probes.rankings import Ranking
from codefocus.serialization import JsonRecord


@dataclass
class ProbeRecord(JsonRecord):
    """One probe: which words of which task were replaced, by what, and what the code did."""

    task_id: str
    ranking: str  # as written: Ranking.parse reads it
    k: int
    changed: list[int]  # word indices
    words: list[str]
    substitutes: list[str]
    categories: list[str]  # label categories of the changed words (may repeat, may be empty)
    flipped: list[str]  # why a substitute flips meaning ("antonym: x -> y", "number: 3 -> 4")
    synonyms: int  # substitutes WordNet calls synonyms of their word
    prompt: str
    perturbed: str
    original_code: str
    new_code: str
    passed: bool
    verdict: str

    @property
    def broke(self) -> bool:
        return not self.passed

    @property
    def counted(self) -> bool:
        """Counted as a robustness probe: no substitute flips meaning."""
        return not self.flipped

    @property
    def rank(self) -> Ranking:
        """The ranking that chose the words, parsed."""
        return Ranking.parse(self.ranking)


@dataclass
class ProbeSummary(JsonRecord):
    tasks: int = 0
    passing: int = 0
    probes: int = 0
    failed_units: list[str] = field(default_factory=list)
    seconds: float = 0.0
