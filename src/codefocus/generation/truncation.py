"""The truncation rule: where a completion's function ends, and so where decoding may stop.

Every engine and backend stops and cuts by this one rule, which is why the engines' outputs can
equal plain greedy decoding's (the stop depends on the tokens alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def function_ended(completion: str) -> bool:
    """Whether the function's end is already decided: a non-blank line at column 0 has begun
    after the body (so decoding can stop: more tokens cannot move ``function_end``)."""
    body_started = False
    for index, line in enumerate(completion.split("\n")):
        if index > 0 and body_started and line.strip() and not line[0].isspace():
            return True
        if line.strip():
            body_started = True
    return False


def function_end(completion: str) -> int:
    """Where a completion's function ends, as a character position: after the newline of the last
    non-blank line before the first non-blank line that starts at column 0 once the body has begun
    (the next ``def``, a test, a ``print``, ...). Nothing is added: a line cut by the token budget
    stays without its newline, and the result is always a prefix of what the model wrote."""
    position = 0
    end = 0
    body_started = False
    for index, line in enumerate(completion.split("\n")):
        if index > 0 and body_started and line.strip() and not line[0].isspace():
            break
        line_end = position + len(line)
        if line.strip():
            body_started = True
            end = line_end + 1 if line_end < len(completion) else line_end
        position = line_end + 1
    return end


def truncate_at_function_end(completion: str) -> str:
    """The completion up to ``function_end`` (a prefix of the text; trailing blank lines go)."""
    return completion[: function_end(completion)]


def stop_at_function_end(tokenizer: Any, starts: Sequence[int], eos: int | None) -> Any:
    """A transformers stopping criterion that ends each row once its function has ended.

    ``starts[i]`` is the column of ``input_ids`` where row i's completion begins (inputs are left
    padded, so a row with a longer forced prefix starts earlier). Finished rows are padded by
    transformers and the loop ends when every row is done.
    """
    import torch
    from transformers import StoppingCriteria

    class FunctionEnd(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = []
            for row, start in zip(input_ids.tolist(), starts, strict=True):
                ids = row[start:]
                if eos is not None and eos in ids:
                    ids = ids[: ids.index(eos)]
                done.append(function_ended(tokenizer.decode(ids, skip_special_tokens=True)))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return FunctionEnd()
