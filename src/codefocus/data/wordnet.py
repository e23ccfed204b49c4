"""A small reader for WordNet 3.0 dictionary files (Debian's ``wordnet-base``, or NLTK's copy).

NLTK's reader wants its own packaging (``lexnames``) and refuses paths outside its data
directories; the files themselves are simple, so codefocus reads what it needs directly:
lemmas in sense order, parts of speech, synonyms and antonyms, with WordNet's morphy rules.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
DETACHMENT = {
    "n": [
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    "v": [
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}
_ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")
SEARCH_PATHS = ("/usr/share/wordnet", "/usr/share/nltk_data/corpora/wordnet")


def find_wordnet() -> Path | None:
    """``$CODEFOCUS_WORDNET``, else the usual install locations; None when absent."""
    candidates = [os.environ.get("CODEFOCUS_WORDNET"), *SEARCH_PATHS]
    for candidate in candidates:
        if candidate and (Path(candidate) / "data.noun").is_file():
            return Path(candidate)
    return None


class WordNet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.synsets: dict[
            tuple[str, int], tuple[list[str], list[tuple[str, int, str, int, int]]]
        ] = {}
        self.index: dict[tuple[str, str], list[int]] = {}
        self.exceptions: dict[tuple[str, str], list[str]] = {}
        for pos, name in POS_FILES.items():
            self._read_data(pos, root / f"data.{name}")
            self._read_index(pos, root / f"index.{name}")
            exc = root / f"{name}.exc"
            if exc.is_file():
                for line in exc.read_text(encoding="latin-1").splitlines():
                    parts = line.split()
                    if len(parts) >= 2:
                        self.exceptions[(parts[0], pos)] = parts[1:]

    def _read_data(self, pos: str, path: Path) -> None:
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split(" | ")[0].split()
            offset, count = int(fields[0]), int(fields[3], 16)
            words = [_ADJ_MARKER.sub("", fields[4 + 2 * i]).lower() for i in range(count)]
            at = 4 + 2 * count
            pointers = []
            for i in range(int(fields[at])):
                symbol, target, target_pos, source_target = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                target_pos = "a" if target_pos == "s" else target_pos
                pointers.append(
                    (
                        symbol,
                        int(target),
                        target_pos,
                        int(source_target[:2], 16),
                        int(source_target[2:], 16),
                    )
                )
            self.synsets[(pos, offset)] = (words, pointers)

    def _read_index(self, pos: str, path: Path) -> None:
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split()
            synset_count, pointer_count = int(fields[2]), int(fields[3])
            offsets = fields[4 + pointer_count + 2 :]
            self.index[(fields[0], pos)] = [int(o) for o in offsets[:synset_count]]

    def lemmas(self, word: str, pos: str) -> list[str]:
        """Base forms of ``word`` as part of speech ``pos`` (WordNet's morphy)."""
        word = word.lower()
        forms = list(self.exceptions.get((word, pos), []))
        if (word, pos) in self.index:
            forms.insert(0, word)
        for suffix, ending in DETACHMENT[pos]:
            if word.endswith(suffix) and len(word) > len(suffix):
                base = word[: len(word) - len(suffix)] + ending
                if (base, pos) in self.index:
                    forms.append(base)
        return list(dict.fromkeys(forms))

    def parts_of_speech(self, word: str) -> set[str]:
        return {pos for pos in POS_FILES if self.lemmas(word, pos)}

    def synonyms(self, word: str, pos: str | None = None) -> list[str]:
        """Other lemmas of the word's synsets, most frequent sense first."""
        found: list[str] = []
        for part in [pos] if pos else list(POS_FILES):
            for lemma in self.lemmas(word, part):
                for offset in self.index.get((lemma, part), []):
                    found += [w for w in self.synsets[(part, offset)][0] if w != lemma]
        return list(dict.fromkeys(w.replace("_", " ") for w in found if w != word.lower()))

    def antonyms(self, word: str) -> set[str]:
        found: set[str] = set()
        for part in POS_FILES:
            for lemma in self.lemmas(word, part):
                for offset in self.index.get((lemma, part), []):
                    words, pointers = self.synsets[(part, offset)]
                    position = words.index(lemma) + 1 if lemma in words else 0
                    for symbol, target, target_pos, source, target_word in pointers:
                        if symbol == "!" and source in (0, position):
                            target_words = self.synsets[(target_pos, target)][0]
                            chosen = (
                                target_words
                                if target_word == 0
                                else [target_words[target_word - 1]]
                            )
                            found.update(w.replace("_", " ") for w in chosen)
        return found


@lru_cache(maxsize=1)
def load_wordnet() -> WordNet | None:
    root = find_wordnet()
    return WordNet(root) if root else None
