"""Statements of generated code, for the word -> statement map."""

from codefocus.data.statements import code_start, statements_of
from codefocus.models.base import MBPP_STUDY_HEADER

MBPP_TEXT = "Write a function to count the frequency of each letter in a string."
DICT_BODY = (
    "\n    table = {\n        'a': 0,\n        'b': 0,\n    }\n"
    "    for c in s:\n        table[c] = table.get(c, 0) + 1\n    return table\n"
)


def test_mbpp_completion_splits_into_statements():
    # the model input starts with English text: only the code part may be parsed
    statements = statements_of(MBPP_TEXT + MBPP_STUDY_HEADER, DICT_BODY)
    texts = [s.text.strip() for s in statements]
    assert texts[0].startswith("table = {") and texts[0].endswith("}")  # one 4-line statement
    assert (statements[0].first_line, statements[0].last_line) == (2, 5)
    assert texts[1:] == ["for c in s:", "table[c] = table.get(c, 0) + 1", "return table"]


def test_humaneval_prompt_is_code_from_its_first_line():
    prompt = 'from typing import List\n\n\ndef f(xs: List[int]) -> int:\n    """Sum."""\n'
    body = "    total = {\n        1: 2,\n    }\n    return total\n"
    assert code_start(prompt, body) == 0
    statements = statements_of(prompt, body)
    assert [(s.first_line, s.last_line) for s in statements] == [(1, 3), (4, 4)]


def test_code_cut_by_the_budget_still_gives_statements():
    statements = statements_of(MBPP_TEXT + MBPP_STUDY_HEADER, "\n    x = 1\n    return (x +")
    assert [s.text.strip() for s in statements] == ["x = 1", "return (x +"]
