"""An attention-pooled code classifier (AutoFocus): token states from a small transformer
encoder, pooled by global attention alpha_i = softmax(h_i . a) into a code vector, then softmax.

Seeded; trained with early stopping on validation accuracy; checkpoints as safetensors + JSON
(never pickle).
"""

from __future__ import annotations

import json
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codefocus.lab.datasets import LabDataset, Sample
from codefocus.lab.parsing import parse
from codefocus.storage import write_text_atomic

PAD, UNK = 0, 1
MEMO_SIZE = 20_000  # encoded programs kept per vocabulary
SCHEDULES = ("constant", "linear", "cosine")  # after the linear warmup


@dataclass
class Encoded:
    ids: list[int]
    spans: list[tuple[int, int]]  # byte span of each kept token


class Vocabulary:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = ["<pad>", "<unk>", *tokens]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        # programs are encoded again and again (every epoch, every noise level, every AutoFocus
        # deletion of the same program): parsing dominates, so recent encodings are kept
        self._memo: OrderedDict[tuple[str, str, int], Encoded] = OrderedDict()

    @classmethod
    def build(
        cls, samples: list[Sample], language: str, size: int = 5000, min_count: int = 2
    ) -> Vocabulary:
        counts = Counter(t.text for s in samples for t in parse(s.code, language).tokens)
        kept = [
            t for t, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if c >= min_count
        ][:size]
        return cls(kept)

    def encode(self, code: str, language: str, max_len: int) -> Encoded:
        key = (code, language, max_len)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        tokens = parse(code, language).tokens[:max_len]
        encoded = Encoded(
            [self.index.get(t.text, UNK) for t in tokens], [(t.start, t.end) for t in tokens]
        )
        self._memo[key] = encoded
        if len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return encoded


def pad_ids(rows: list[list[int]]):
    """A (batch, longest) id tensor padded with PAD; an empty program becomes one UNK."""
    import torch

    width = max(1, max((len(row) for row in rows), default=1))
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            ids[index, : len(row)] = torch.tensor(row)
        else:
            ids[index, 0] = UNK
    return ids


def _model(vocab_size: int, classes: int, dim: int, layers: int, norm_first: bool = False):
    import torch
    from torch import nn

    class AttentionPooledClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
            self.position = nn.Embedding(1024, dim)
            # layers == 0: attention pooling straight over token + position embeddings.
            # norm_first: pre-norm layers (layer norm before attention and feed-forward, one more
            # at the end), which train stably deeper than post-norm ones
            layer = nn.TransformerEncoderLayer(
                dim, 4, dim * 2, dropout=0.1, batch_first=True, norm_first=norm_first
            )
            self.encoder = (
                nn.TransformerEncoder(
                    layer,
                    layers,
                    norm=nn.LayerNorm(dim) if norm_first else None,
                    enable_nested_tensor=False,
                )
                if layers > 0
                else None
            )
            self.attention = nn.Parameter(torch.randn(dim) / dim**0.5)  # the global vector a
            self.out = nn.Linear(dim, classes)

        def forward(self, ids):
            mask = ids == PAD
            positions = torch.arange(ids.shape[1], device=ids.device)[None]
            states = self.embed(ids) + self.position(positions)
            if self.encoder is not None:
                states = self.encoder(states, src_key_padding_mask=mask)
            scores = (states @ self.attention).masked_fill(mask, float("-inf"))
            alpha = torch.softmax(scores, dim=-1)
            vector = (alpha[..., None] * states).sum(1)
            return self.out(vector), alpha

    return AttentionPooledClassifier()


def schedule_factor(step: int, total: int, warmup: int, kind: str = "cosine") -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``, as a share of the
    peak: a linear warmup, (step + 1) / warmup, over the first ``warmup`` steps; then the peak
    (``constant``), or a linear or cosine (``0.5 (1 + cos(pi p))``) decay over the remaining
    steps, p = (step - warmup) / (total - warmup), from the peak towards 0 at step ``total``."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}: choose from {', '.join(SCHEDULES)}")
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_scheduler(optimiser, total: int, warmup: int, kind: str = "cosine"):
    """A torch scheduler giving optimiser step k the learning rate peak * ``schedule_factor(k,
    ...)`` (``train_epoch`` steps it after every optimiser step)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: schedule_factor(step, total, warmup, kind)
    )


class EncodedPrograms:
    """Token ids of a list of programs, encoded once, for batching in any order."""

    def __init__(self, model: CodeClassifier, codes: list[str]) -> None:
        self.rows = [model.vocabulary.encode(c, model.language, model.max_len).ids for c in codes]

    def batches(self, size: int, order=None):
        order = list(range(len(self.rows)) if order is None else order)
        for begin in range(0, len(order), size):
            chosen = order[begin : begin + size]
            yield chosen, pad_ids([self.rows[i] for i in chosen])


def early_stopping(net, one_epoch, validate, epochs: int, patience: int, progress=None) -> dict:
    """Train epoch by epoch (``one_epoch`` returns the mean loss) with early stopping on
    ``validate()`` (accuracy); keeps the best weights. Shared by both encoders."""
    best, best_state, waited, history = -1.0, None, 0, []
    for epoch in range(epochs):
        loss = one_epoch()
        valid = validate()
        history.append({"epoch": epoch + 1, "loss": loss, "valid_accuracy": valid})
        if progress:
            progress(epoch + 1, history[-1])
        if valid > best:
            best, waited = valid, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return {"history": history, "best_valid_accuracy": best}


def accuracy_of(predict, samples: list[Sample]) -> float:
    """Share of ``samples`` whose most probable class (``predict(codes)[0]``) is the label."""
    if not samples:
        return float("nan")
    probabilities, _ = predict([s.code for s in samples])
    return float(np.mean(probabilities.argmax(1) == np.array([s.label for s in samples])))


def save_weights(net, directory: str | Path, meta: dict) -> None:
    """The weights as safetensors and the rest as JSON (never pickle)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, directory / "model.safetensors"
    )
    write_text_atomic(directory / "classifier.json", json.dumps(meta))


class CodeClassifier:
    def __init__(
        self,
        vocabulary: Vocabulary,
        classes: list[str],
        language: str,
        dim: int = 64,
        layers: int = 2,
        max_len: int = 400,
        seed: int = 0,
        norm_first: bool = False,
    ) -> None:
        import torch

        torch.manual_seed(seed)
        self.vocabulary, self.classes, self.language = vocabulary, classes, language
        self.dim, self.layers, self.max_len, self.seed = dim, layers, max_len, seed
        self.norm_first = norm_first
        self.net = _model(len(vocabulary.tokens), len(classes), dim, layers, norm_first)

    def _batch(self, codes: list[str]):
        encoded = [self.vocabulary.encode(c, self.language, self.max_len) for c in codes]
        return pad_ids([e.ids for e in encoded]), encoded

    def predict(
        self, codes: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Class probabilities (n x classes) and each program's token attention."""
        import torch

        self.net.eval()
        probabilities, attentions = [], []
        with torch.no_grad():
            for begin in range(0, len(codes), batch_size):
                ids, encoded = self._batch(codes[begin : begin + batch_size])
                logits, alpha = self.net(ids)
                probabilities.append(torch.softmax(logits, -1).numpy())
                attentions += [alpha[i, : len(e.ids)].numpy() for i, e in enumerate(encoded)]
        return np.concatenate(probabilities), attentions

    def accuracy(self, samples: list[Sample]) -> float:
        return accuracy_of(self.predict, samples)

    def train_epoch(
        self,
        encoded: EncodedPrograms,
        labels: list[int],
        order,
        batch_size: int,
        optimiser,
        scheduler=None,
        clip_norm: float | None = None,
    ) -> float:
        """One pass over the programs in ``order``, in batches; returns the summed loss. The one
        training loop: ``fit`` and the memorization study both run it. ``scheduler`` (a torch
        LR scheduler) steps after every optimiser step; ``clip_norm`` bounds the gradient's
        global L2 norm."""
        import torch

        self.net.train()
        total = 0.0
        for chosen, ids in encoded.batches(batch_size, order):
            logits, _ = self.net(ids)
            loss = torch.nn.functional.cross_entropy(
                logits, torch.tensor([labels[i] for i in chosen])
            )
            optimiser.zero_grad()
            loss.backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip_norm)
            optimiser.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(chosen)
        return total

    def fit(
        self,
        dataset: LabDataset,
        epochs: int = 30,
        patience: int = 5,
        batch_size: int = 16,
        learning_rate: float = 1e-3,
        progress=None,
    ) -> dict:
        """Train with early stopping on validation accuracy; keeps the best weights."""
        import torch

        rng = np.random.default_rng(self.seed)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        encoded = EncodedPrograms(self, [s.code for s in dataset.train])
        labels = [s.label for s in dataset.train]

        def one_epoch() -> float:
            order = rng.permutation(len(dataset.train))
            return self.train_epoch(encoded, labels, order, batch_size, optimiser) / len(order)

        return early_stopping(
            self.net, one_epoch, lambda: self.accuracy(dataset.valid), epochs, patience, progress
        )

    def save(self, directory: str | Path) -> None:
        meta = {
            "vocabulary": self.vocabulary.tokens[2:],
            "classes": self.classes,
            "language": self.language,
            "dim": self.dim,
            "layers": self.layers,
            "max_len": self.max_len,
            "seed": self.seed,
            "norm_first": self.norm_first,
        }
        save_weights(self.net, directory, meta)

    @classmethod
    def load(cls, directory: str | Path) -> CodeClassifier:
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / "classifier.json").read_text())
        model = cls(
            Vocabulary(meta["vocabulary"]),
            meta["classes"],
            meta["language"],
            meta["dim"],
            meta["layers"],
            meta["max_len"],
            meta["seed"],
            meta.get("norm_first", False),  # checkpoints before pre-norm layers were post-norm
        )
        model.net.load_state_dict(load_file(directory / "model.safetensors"))
        model.net.eval()
        return model
