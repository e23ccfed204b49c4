"""Which words of a task a probe may change, and what a change means.

``probe_words``: the study's scored words of the task, less HumanEval's signature line (the
interface the tests call: a renamed function or parameter fails whatever the model writes).
``meaning_change``: whether a substitute flips the word's meaning (a WordNet antonym, a listed
opposite, a different number), which leaves the probe out of the robustness count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefocus.data.units import Span, scoped_word_spans

if TYPE_CHECKING:
    from codefocus.data.benchmarks import Task


def probe_words(task: Task) -> list[Span]:
    """The words a probe may substitute: the study's scored words, less HumanEval's signature."""
    words = scoped_word_spans(task.prompt, "study")
    if task.benchmark == "humaneval":
        start = task.prompt.find("def ")
        line_end = task.prompt.find("\n", start)
        words = [w for w in words if not (start <= w.start < line_end)]
    return words


def word_categories(task: Task, word: Span) -> list[str]:
    return sorted(
        {s.category for s in task.human_spans if min(s.end, word.end) > max(s.start, word.start)}
    )


# opposites that matter in a task's logic but that WordNet does not list as antonyms
OPPOSITES = {
    frozenset(pair)
    for pair in (
        ("and", "or"),
        ("all", "any"),
        ("min", "max"),
        ("minimum", "maximum"),
        ("true", "false"),
        ("even", "odd"),
        ("ascending", "descending"),
        ("increasing", "decreasing"),
        ("first", "last"),
        ("before", "after"),
        ("less", "more"),
        ("fewer", "more"),
        ("lower", "upper"),
        ("lowercase", "uppercase"),
        ("smaller", "larger"),
        ("smaller", "bigger"),
        ("smallest", "largest"),
        ("positive", "negative"),
        ("left", "right"),
    )
}


def meaning_change(word: str, substitute: str, wordnet) -> tuple[str | None, bool]:
    """(why the substitute flips meaning, or None; whether WordNet calls them synonyms)."""
    from codefocus.methods.substitutes import _NUMBER

    if frozenset((word.lower(), substitute.lower())) in OPPOSITES:
        return f"opposite: {word} -> {substitute}", False
    if _NUMBER.match(word):
        return (f"number: {word} -> {substitute}" if substitute != word else None), False
    if wordnet is None:
        return None, False
    low, new = word.lower(), substitute.lower()
    forms = {new} | {f for pos in ("n", "v", "a", "r") for f in wordnet.lemmas(new, pos)}
    if forms & {a.lower() for a in wordnet.antonyms(low)}:
        return f"antonym: {word} -> {substitute}", False
    synonyms = {s.lower() for s in wordnet.synonyms(low)}
    return None, bool(forms & synonyms)
