"""Plain reference computations the tests compare codefocus against (kept apart from the code
under test, and written once for every test module that needs them)."""

import torch


def naive_logprob(model, text: str, completion_ids: list[int]) -> float:
    """One forward of input + completion, full logits, log-softmax, the completion's tokens."""
    prompt = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + completion_ids])
    with torch.no_grad():
        logits = model.model(ids).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(completion_ids)))
