"""Plain reference computations the tests compare codefocus against (kept apart from the code
under test, and written once for every test module that needs them)."""

from collections.abc import Callable, Sequence
from itertools import combinations
from math import factorial

import numpy as np
import torch


def naive_logprob(model, text: str, completion_ids: list[int]) -> float:
    """One forward of input + completion, full logits, log-softmax, the completion's tokens."""
    prompt = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + completion_ids])
    with torch.no_grad():
        logits = model.model(ids).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(completion_ids)))


def exact_shapley(game: Callable[[Sequence[int]], float], players: int) -> np.ndarray:
    """Shapley values by their definition: player i's marginal value ``game(S + i) - game(S)``
    over every coalition S of the others, weighted |S|! (n - |S| - 1)! / n!. ``game`` takes the
    present players' indices."""
    phi = np.zeros(players)
    for i in range(players):
        others = [j for j in range(players) if j != i]
        for size in range(players):
            weight = factorial(size) * factorial(players - size - 1) / factorial(players)
            for subset in combinations(others, size):
                phi[i] += weight * (game((*subset, i)) - game(subset))
    return phi
