import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefocus.data.units import (
    Span,
    aggregate_to_words,
    find_units,
    scored_units_from_pairs,
    spans_from_offsets,
    word_spans,
)
from codefocus.errors import InvalidArgumentError


def test_find_units_moves_cursor_and_drops_missing():
    text = "sum the numbers, then the numbers again"
    spans = find_units(text, ["the", "numbers", "zzz", "the", "numbers"])
    assert spans[0] == Span(4, 7)
    assert spans[1] == Span(8, 15)
    assert spans[2] is None  # not found: dropped, cursor unchanged
    assert spans[3] == Span(17, 20)  # str.find matches the 'the' inside 'then', as the study did
    assert spans[4] == Span(26, 33)


def test_find_units_finds_inside_words_like_the_study():
    # the study's str.find matches a sub-token inside a larger word
    assert find_units("closer", ["clo", "ser"]) == [Span(0, 3), Span(3, 6)]


def test_scored_units_keep_scores_of_found_units():
    units = scored_units_from_pairs("a b c", [("a", 0.1), ("x", 0.5), ("c", 0.9)])
    assert [(u.text, u, score) for u, score in units] == [
        ("a", Span(0, 1), 0.1),
        ("c", Span(4, 5), 0.9),
    ]


def test_word_spans_drop_punctuation_and_split_sentences():
    text = "Write a function. It returns the sum (of pairs)."
    words = [s.substring(text) for s in word_spans(text)]
    assert words == ["Write", "a", "function", "It", "returns", "the", "sum", "of", "pairs"]


def test_word_spans_keep_identifiers():
    text = "def has_close_elements(numbers: List[float]) -> bool:"
    words = [s.substring(text) for s in word_spans(text)]
    assert "has_close_elements" in words and "numbers" in words and "bool" in words


def test_aggregate_sub_tokens_to_words():
    words = [Span(0, 6), Span(7, 10)]
    tokens = spans_from_offsets([(0, 3), (3, 6), (6, 7), (7, 10)])
    scores = [0.25, 0.5, 0.1, 2.0]
    assert aggregate_to_words(tokens, scores, words, "sum") == [0.75, 2.0]
    assert aggregate_to_words(tokens, scores, words, "mean") == [0.375, 2.0]
    assert aggregate_to_words(tokens, scores, words, "max") == [0.5, 2.0]
    with pytest.raises(InvalidArgumentError):
        aggregate_to_words(tokens, scores, words, "median")  # type: ignore[arg-type]


def test_span_validation_and_overlap():
    with pytest.raises(InvalidArgumentError):
        Span(5, 2)
    assert Span(0, 5).overlap(Span(3, 10)) == 2
    assert Span(0, 5).overlap(Span(5, 10)) == 0


@given(
    st.lists(st.text(alphabet="ab ", min_size=1, max_size=4), max_size=8),
    st.text("ab ", max_size=30),
)
def test_found_units_are_ordered_and_match(units, text):
    spans = find_units(text, units)
    previous_end = 0
    for unit, span in zip(units, spans, strict=True):
        if span is None:
            continue
        assert text[span.start : span.end] == unit
        assert span.start >= previous_end
        previous_end = span.end
