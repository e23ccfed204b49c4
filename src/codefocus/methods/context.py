"""One prompt + completion on one white-box model, with the forward/backward work cached.

Positions: the sequence is ``prompt tokens (P) + generated tokens (G)``; S = P + G. Generated token
s (0-based) is produced at position P - 1 + s: the query there is what attends while the model
writes token s, and the logit of token s there is what the gradients differentiate. So row s of
every per-step matrix (attention or gradient) belongs to generated token s, and the word ->
statement map gives both kinds of method the same tokens for the same statement.

Every method scores the P prompt tokens; ``scored`` marks those inside the scored scope (the
study's: HumanEval from ``def`` to the first ``>>>``). The model still reads every token; per-step
gradient vectors are normalised over the scored tokens, so each step's distribution covers the
words that are compared.

Attention sink: every causal LM parks most of each row's attention on the first input position,
whatever its word (the first word of every MBPP task is "Write"). That mass says nothing about the
word, so attention methods do not score position 0 by default (``exclude_sink``); its word keeps
the scores of its other tokens. Gradient and perturbation methods score it as any other token.

Precision: whatever the model's dtype, every sum and norm here is taken in float32 or wider —
heads are summed after the cast to float32, target logits are dot products in float32, gradient
norms and integrated gradients' path sums are float32, and the scores leave as float64. A model
in float32 runs exactly as it always has (every cast is then a no-op).

Memory: ``max_memory`` (bytes) chooses how many rows the batched backward passes of the
coding-stage gradients and the interpolation steps of integrated gradients hold at once, from the
estimates in ``generation/memory.py``; None keeps ``gradient_chunk`` and one batch of every
step. Each row is computed on its own, so the scores do not depend on the rows per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from codefocus.generation.memory import ModelShape, rows_within
from codefocus.models.base import WhiteBoxModel


def _wide(dtype):
    """The dtype reductions are taken in: the model's own where it is float32 or wider, else
    float32 (bfloat16 keeps 8 significant bits; a sum of thousands of terms in it loses most)."""
    import torch

    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


@dataclass
class AttributionContext:
    model: WhiteBoxModel
    model_input: str
    completion: str
    gradient_chunk: int = 16
    completion_ids: Sequence[int] | None = None  # the generated tokens, when known
    scope: tuple[int, int] | None = None  # scored characters of model_input; None: all of it
    exclude_sink: bool = True  # attention methods do not score the first input position
    contrast: str | None = None  # code to contrast with (``contrastive_gradients``)
    _attention: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _layer0_heads: np.ndarray | None = field(default=None, repr=False)
    _gradients: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _first_gradients: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _last_gradients: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _contrast_gradients: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        prompt = self.model.encode(self.model_input)
        self.prompt_offsets = prompt.offsets
        self.prompt_tokens = prompt.tokens
        self.prompt_ids = prompt.ids
        if self.completion_ids is not None and self.model.decode(self.completion_ids) == (
            self.completion
        ):  # score exactly the tokens the model generated
            self.completion_ids = list(self.completion_ids)
            self.completion_offsets = self.model.token_spans(self.completion_ids)
        else:  # a completion given as text: its tokenisation
            generated = self.model.encode(self.completion) if self.completion else None
            self.completion_ids = generated.ids if generated else []
            self.completion_offsets = generated.offsets if generated else []
        start, end = self.scope if self.scope is not None else (0, len(self.model_input))
        self.scored = np.array([s < end and e > start for s, e in self.prompt_offsets], dtype=bool)
        self.P = len(self.prompt_ids)
        self.attention_scored = self.scored.copy()
        if self.exclude_sink and self.P:
            self.attention_scored[0] = False
        self.G = len(self.completion_ids)
        self.model.check_fits(self.P, self.G)
        if self.P == 0:
            from codefocus.errors import InvalidArgumentError

            raise InvalidArgumentError("the prompt is empty")

    # ---- shared tensors ------------------------------------------------------------------
    def _ids(self):
        import torch

        return torch.tensor([self.prompt_ids + self.completion_ids], device=self.model.device)

    def target_ids(self) -> list[int]:
        """Generated tokens; with no completion, the greedy next token stands in for step 0."""
        if self.completion_ids:
            return list(self.completion_ids)
        import torch

        with torch.no_grad():
            logits = self.model.model(self._ids()).logits[0, -1]
        return [int(logits.argmax())]

    # ---- attention -----------------------------------------------------------------------
    def attention(self, layers: set[int], layer0_heads: bool = False) -> dict[int, np.ndarray]:
        """Head-summed attention of each requested layer: (S, P), rows = query positions,
        columns = prompt tokens. Forward hooks keep only those layers, already reduced, so memory
        stays O(layers x S x P) instead of O(all layers x heads x S^2)."""
        import torch

        missing = {layer for layer in layers if layer not in self._attention}
        if layer0_heads and self._layer0_heads is None:
            missing.add(0)
        if not missing:
            return {layer: self._attention[layer] for layer in layers}
        # one forward serves every attention method: capture all layers not yet captured (each
        # is only S x P floats once its heads are summed)
        missing |= {i for i in range(self.model.num_layers) if i not in self._attention}
        modules = self.model.attention_modules()
        P = self.P
        captured: dict[int, torch.Tensor] = {}
        heads: list[torch.Tensor] = []

        def make_hook(index: int):
            def hook(module, inputs, output):
                weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
                if weights is None:
                    return
                # heads summed in float32 (a no-op cast for a float32 model)
                captured[index] = weights[0].float().sum(0)[:, :P].detach().cpu()
                if index == 0 and layer0_heads:
                    heads.append(weights[0][:, :, :P].detach().float().cpu())

            return hook

        handles = [modules[i].register_forward_hook(make_hook(i)) for i in sorted(missing)]
        try:
            with torch.no_grad():
                self.model.model(self._ids(), use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        if set(captured) != missing:
            from codefocus.errors import CodefocusError

            raise CodefocusError(
                f"{self.model.name} returned no attention weights (is eager attention in use?)"
            )
        for index, matrix in captured.items():
            self._attention[index] = matrix.numpy()
        if heads:
            self._layer0_heads = heads[0].numpy()
        return {layer: self._attention[layer] for layer in layers}

    def layer0_heads(self) -> np.ndarray:
        """Layer 0 attention per head: (H, S, P) — the study's released self-attention methods.

        Where no other layer has been asked for, the forward stops once layer 0's attention is
        captured: later layers cannot change it, so these methods cost one layer of the model,
        not all of them (``tests/test_protocol.py`` checks them against ``output_attentions``).
        """
        if self._layer0_heads is None and self._attention:
            self.attention({0}, layer0_heads=True)
        if self._layer0_heads is None:
            self._layer0_heads = self._first_layer_heads()
        return self._layer0_heads

    def _first_layer_heads(self) -> np.ndarray:
        import torch

        from codefocus.errors import CodefocusError

        captured: list[torch.Tensor] = []

        class Captured(Exception):
            """Raised by the hook: the rest of the forward is not needed."""

        def hook(module, inputs, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is not None:
                captured.append(weights[0][:, :, : self.P].detach().float().cpu())
                raise Captured

        handle = self.model.attention_modules()[0].register_forward_hook(hook)
        try:
            with torch.no_grad():
                self.model.model(self._ids(), use_cache=False)
        except Captured:
            pass
        finally:
            handle.remove()
        if not captured:
            raise CodefocusError(
                f"{self.model.name} returned no attention weights (is eager attention in use?)"
            )
        return captured[0].numpy()

    # ---- gradients -----------------------------------------------------------------------
    def _target_logits(self, embeds, targets: list[int], positions: list[int]):
        """Logits of ``targets`` at ``positions``, without materialising the S x V logits."""
        base = self.model.model.base_model
        hidden = base(inputs_embeds=embeds, use_cache=False).last_hidden_state[0]
        head = self.model.model.get_output_embeddings()
        import torch

        index = torch.tensor(targets, device=hidden.device)
        rows = hidden[torch.tensor(positions, device=hidden.device)]
        wide = _wide(rows.dtype)  # the dot products in float32 whatever the model's dtype
        logits = (rows.to(wide) * head.weight[index].to(wide)).sum(-1)
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[index].to(wide)
        return logits

    def first_step_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """Saliency and input×gradient of the first generated token only, (1, P): what the
        reading-stage methods need (one backward pass instead of G)."""
        if self._gradients is not None:
            return self._gradients[0][:1], self._gradients[1][:1]
        if self._first_gradients is None:
            self._first_gradients = self.gradients(steps=1, keep=False)
        return self._first_gradients

    def last_step_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """Saliency and input×gradient of the last generated token only, (1, P): the study's
        released CODING vector (one backward pass over the whole sequence instead of G)."""
        if self._gradients is not None:
            return self._gradients[0][-1:], self._gradients[1][-1:]
        if self._last_gradients is None:
            steps = max(len(self.target_ids()), 1)
            self._last_gradients = self.gradients(steps=steps, keep=False, only=[steps - 1])
        return self._last_gradients

    def gradients(
        self,
        steps: int | None = None,
        keep: bool = True,
        chunk: int | None = None,
        only: list[int] | None = None,
        max_memory: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per generated step: saliency and input×gradient over the prompt tokens, (G', P).

        One teacher-forced forward over prompt + generation, then the gradient of each step's
        target logit w.r.t. the input embeddings, in batched backward passes (vmap over the
        output gradients, chunked). Causality makes this equal to one forward per step on its
        own prefix. Each step's vector is L2 over the embedding dimension, normalised to sum 1
        over that step's inputs (prompt + earlier generated tokens), then cut to the prompt.
        ``chunk`` (default ``gradient_chunk``) bounds the memory of one batched backward;
        ``max_memory`` (bytes), where given, chooses it instead: the most rows whose estimated
        memory (``ModelShape.gradient_graph`` + rows x ``gradient_row``) fits. ``only`` keeps
        just those steps (one row each, in that order) out of the first ``steps``.
        """
        if self._gradients is not None and keep:
            return self._gradients
        import torch

        targets = self.target_ids()[:steps]
        steps = len(targets)
        ids = self._ids()[:, : self.P + steps - 1]
        embedding = self.model.model.get_input_embeddings()
        with torch.no_grad():
            embeds = embedding(ids).detach()
        embeds.requires_grad_(True)
        chosen = list(range(steps)) if only is None else list(only)
        positions = [self.P - 1 + s for s in chosen]
        logits = self._target_logits(embeds, [targets[s] for s in chosen], positions)
        steps = len(chosen)
        saliency = np.zeros((steps, self.P))
        input_x_gradient = np.zeros((steps, self.P))
        eye = torch.eye(steps, device=logits.device, dtype=logits.dtype)
        chunk = chunk or self.gradient_chunk
        if max_memory is not None:
            shape = ModelShape.of_model(self.model)
            length = ids.shape[1]
            chunk = rows_within(
                max_memory, shape.gradient_row(length), shape.gradient_graph(length), steps
            )
        for begin in range(0, steps, chunk):
            rows = eye[begin : begin + chunk]
            last = begin + len(rows) >= steps
            try:
                (grads,) = torch.autograd.grad(
                    logits, embeds, grad_outputs=rows, retain_graph=not last, is_grads_batched=True
                )
            except RuntimeError:  # an op without a batching rule: one backward per step
                grads = torch.stack(
                    [
                        torch.autograd.grad(logits, embeds, grad_outputs=row, retain_graph=True)[0]
                        for row in rows
                    ]
                )
            wide = _wide(grads.dtype)  # norms in float32 whatever the model's dtype
            grads = grads[:, 0].to(wide)  # (chunk, S', d)
            sal = grads.norm(dim=-1)
            ixg = (grads * embeds[0].detach().to(wide)).norm(dim=-1)
            for offset in range(len(rows)):
                step = begin + offset
                for store, values in ((saliency, sal), (input_x_gradient, ixg)):
                    store[step] = self.normalised(values[offset, : self.P].double().cpu().numpy())
        if keep:
            self._gradients = (saliency, input_x_gradient)
        return saliency, input_x_gradient

    # ---- contrastive gradients -------------------------------------------------------------
    def contrast_ids(self) -> list[int]:
        """The contrast's tokens: its tokenisation (as ``CompletionScorer`` scores it), or the
        completion's own tokens when the contrast is the completion's text."""
        from codefocus.errors import InvalidArgumentError

        if not self.contrast:
            raise InvalidArgumentError("no contrast given: give code to contrast with")
        if self.contrast == self.completion:
            return list(self.completion_ids or [])
        ids = list(self.model.encode(self.contrast).ids)
        self.model.check_fits(self.P, len(ids))
        return ids

    def _sequence_logprob(self, prompt_embeds, targets: list[int]):
        """``sum log p(targets | prompt)``, teacher-forced, as a function of the prompt's
        embeddings (1, P, d); the log-softmax in float32 or wider."""
        import torch

        embedding = self.model.model.get_input_embeddings()
        with torch.no_grad():
            rest = embedding(torch.tensor([targets[:-1]], device=prompt_embeds.device))
        embeds = torch.cat([prompt_embeds, rest.to(prompt_embeds.dtype)], dim=1)
        base = self.model.model.base_model
        hidden = base(inputs_embeds=embeds, use_cache=False).last_hidden_state[0, self.P - 1 :]
        head = self.model.model.get_output_embeddings()
        wide = _wide(hidden.dtype)
        bias = getattr(head, "bias", None)
        logits = torch.nn.functional.linear(
            hidden.to(wide), head.weight.to(wide), None if bias is None else bias.to(wide)
        )
        index = torch.tensor(targets, device=logits.device)[:, None]
        return torch.log_softmax(logits, -1).gather(1, index).sum()

    def contrastive_gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """Saliency and input×gradient of the contrastive target, (P,) each.

        The target is ``D = log p(completion | prompt) - log p(contrast | prompt)`` (each sum
        over its own teacher-forced tokens), differentiated with respect to the prompt's input
        embeddings ``e_j``: two forwards and two backward passes, ``g = grad log p(completion)
        - grad log p(contrast)``. Saliency is ``||g_j||``, normalised as every saliency vector
        is (unsigned: how strongly token j moves the difference, not which way);
        input×gradient is the signed ``e_j · g_j`` (the first-order share of token j in D, in
        log-probability units: positive pushes toward the completion, negative toward the
        contrast), zero outside the scored scope.
        """
        if self._contrast_gradients is not None:
            return self._contrast_gradients
        import torch

        embedding = self.model.model.get_input_embeddings()
        with torch.no_grad():
            prompt = embedding(self._ids()[:, : self.P]).detach()
        wide = _wide(prompt.dtype)
        total = torch.zeros(prompt.shape[1:], device=prompt.device, dtype=wide)
        for targets, sign in ((list(self.completion_ids or []), 1.0), (self.contrast_ids(), -1.0)):
            if not targets:  # no tokens: log p = 0, no gradient
                continue
            leaf = prompt.clone().requires_grad_(True)
            (grads,) = torch.autograd.grad(self._sequence_logprob(leaf, targets), leaf)
            total = total + sign * grads[0].to(wide)
        saliency = self.normalised(total.norm(dim=-1).double().cpu().numpy())
        signed = (total * prompt[0].to(wide)).sum(-1).double().cpu().numpy()
        self._contrast_gradients = (saliency, np.where(self.scored, signed, 0.0))
        return self._contrast_gradients

    def normalised(self, vector: np.ndarray) -> np.ndarray:
        """Zero outside the scored scope, then divided by its sum (when positive)."""
        vector = np.where(self.scored, vector, 0.0)
        total = vector.sum()
        return vector / total if total > 0 else vector

    def step_rows(self, matrix: np.ndarray) -> np.ndarray:
        """Rows of an (S, P) matrix of query positions that produced generated tokens 0..G-1."""
        return matrix[self.P - 1 : self.P - 1 + self.G]

    def integrated_gradients(self, n_steps: int = 20, max_memory: int | None = None) -> np.ndarray:
        """Integrated gradients of the first generated token's logit w.r.t. the prompt embeddings,
        from an all-zero baseline (trapezoid rule), summed over the embedding dimension;
        |value| normalised to sum 1. The path's points and weights, the logit and the sums are
        float32 (or wider); ``max_memory`` (bytes) bounds how many of the ``n_steps`` points one
        forward and backward hold (default: all of them)."""
        import torch

        target = self.target_ids()[0]
        embedding = self.model.model.get_input_embeddings()
        with torch.no_grad():
            inputs = embedding(self._ids()[:, : self.P]).detach()
        wide = _wide(inputs.dtype)
        alphas = torch.linspace(0, 1, n_steps, device=inputs.device, dtype=wide)
        weights = torch.full((n_steps,), 1.0 / (n_steps - 1), device=inputs.device, dtype=wide)
        weights[0] = weights[-1] = 0.5 / (n_steps - 1)
        rows = n_steps
        if max_memory is not None:  # each point is a row: its own forward graph and backward
            shape = ModelShape.of_model(self.model)
            per_row = shape.gradient_graph(self.P) + shape.gradient_row(self.P)
            rows = rows_within(max_memory, per_row, most=n_steps)
        base = self.model.model.base_model
        head = self.model.model.get_output_embeddings()
        parts = []
        for begin in range(0, n_steps, rows):
            points = alphas[begin : begin + rows, None, None] * inputs.to(wide)
            scaled = points.to(inputs.dtype).requires_grad_(True)  # (rows, P, d)
            hidden = base(inputs_embeds=scaled, use_cache=False).last_hidden_state[:, -1]
            logits = (hidden.to(wide) * head.weight[target].to(wide)).sum(-1)
            if getattr(head, "bias", None) is not None:
                logits = logits + head.bias[target].to(wide)
            (grads,) = torch.autograd.grad(logits.sum(), scaled)
            parts.append(grads)
        grads = parts[0] if len(parts) == 1 else torch.cat(parts)
        averaged = (weights[:, None, None] * grads.to(wide)).sum(0)
        return self.normalised((inputs[0].to(wide) * averaged).sum(-1).abs().double().cpu().numpy())
