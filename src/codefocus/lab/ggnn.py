"""A gated graph neural network over program graphs, pooled by attention over the nodes.

GGNN (Li et al., ICLR 2016; Allamanis et al., ICLR 2018 for code): node states start from the
node's type and sub-token embeddings (h_0); for T steps each node sums a message per incoming
edge, one linear map per edge type, and updates its state with a GRU cell (h_T). A pooling turns
the node states into the program vector y, and a linear head classifies it. Poolings, by what
they compute (``POOLINGS``; h_i is node i's final state, sums run over one graph's nodes):

* ``softmax-dot`` (the default; AutoFocus's, Bui et al., ASE 2019): global attention
  alpha_i = softmax_i(h_i^T a) with a learned vector a, and y = sum_i alpha_i h_i.
* ``sigmoid-gate``: alpha_i = sigmoid(w^T [h_i, h0_i] + b), y = sum_i alpha_i tanh(W [h_i, h0_i])
  (GGNN's gated graph-level output; AutoFocus mentions such a gate only where it visualises).
* ``softmax-gate``: as ``sigmoid-gate`` with alpha_i = softmax_i(w^T [h_i, h0_i] + b).

The old names ``sigmoid`` and ``softmax`` (before 0.2) still resolve, to ``sigmoid-gate`` and
``softmax-gate``, with a ``DeprecationWarning``. Built on torch-geometric (``MessagePassing``,
batching, ``scatter``/``softmax``).

``GraphClassifier`` has the transformer classifier's interface (fit, predict, accuracy, save,
load), with ``predict_graphs`` for AutoFocus's deletions on the graph itself.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from codefocus.lab.classifier import accuracy_of, early_stopping, save_weights
from codefocus.lab.datasets import LabDataset, Sample
from codefocus.lab.graphs import NUM_EDGE_TYPES, ProgramGraph, program_graph

POOLINGS: dict[str, str] = {
    "softmax-dot": "alpha_i = softmax_i(h_i^T a), y = sum alpha_i h_i (AutoFocus's attention)",
    "sigmoid-gate": "alpha_i = sigmoid(w^T [h_i, h0_i] + b), y = sum alpha_i tanh(W [h_i, h0_i])",
    "softmax-gate": "alpha_i = softmax_i(w^T [h_i, h0_i] + b), y = sum alpha_i tanh(W [h_i, h0_i])",
}
DEFAULT_POOLING = "softmax-dot"
OLD_POOLING_NAMES: dict[str, str] = {"sigmoid": "sigmoid-gate", "softmax": "softmax-gate"}
MAX_SUBTOKENS = 4


def resolve_pooling(name: str) -> str:
    """The pooling's name; an old name (``sigmoid``, ``softmax``) gives its new one with a
    ``DeprecationWarning``, an unknown one raises ``InvalidArgumentError``."""
    if name in OLD_POOLING_NAMES:
        warnings.warn(
            f"the GGNN pooling {name!r} is now {OLD_POOLING_NAMES[name]!r}; "
            "the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return OLD_POOLING_NAMES[name]
    if name not in POOLINGS:
        from codefocus.errors import InvalidArgumentError

        raise InvalidArgumentError(f"unknown pooling {name!r}: use {', '.join(POOLINGS)}")
    return name


class GraphVocabulary:
    """Node types and sub-tokens seen in training (index 0: padding / unknown)."""

    def __init__(self, types: list[str], subtokens: list[str]) -> None:
        self.types = ["<unk>", *types]
        self.subtokens = ["<pad>", "<unk>", *subtokens]
        self.type_index = {t: i for i, t in enumerate(self.types)}
        self.subtoken_index = {t: i for i, t in enumerate(self.subtokens)}

    @classmethod
    def build(cls, graphs: list[ProgramGraph], size: int = 5000, min_count: int = 2):
        types = sorted({t for g in graphs for t in g.node_types})
        counts = Counter(s for g in graphs for parts in g.node_tokens for s in parts)
        kept = [t for t, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if c >= min_count]
        return cls(types, kept[:size])

    def data(self, graph: ProgramGraph, label: int = 0):
        """A torch-geometric ``Data`` of the graph."""
        import torch
        from torch_geometric.data import Data

        types = torch.tensor([self.type_index.get(t, 0) for t in graph.node_types])
        subtokens = torch.zeros((graph.size, MAX_SUBTOKENS), dtype=torch.long)
        for node, parts in enumerate(graph.node_tokens):
            for slot, part in enumerate(parts[:MAX_SUBTOKENS]):
                subtokens[node, slot] = self.subtoken_index.get(part, 1)
        if graph.edges:
            edges = torch.tensor(graph.edges, dtype=torch.long)
            edge_index, edge_type = edges[:, :2].t().contiguous(), edges[:, 2]
        else:
            edge_index = torch.zeros((2, 0), dtype=torch.long)
            edge_type = torch.zeros((0,), dtype=torch.long)
        return Data(
            types=types,
            subtokens=subtokens,
            edge_index=edge_index,
            edge_type=edge_type,
            y=torch.tensor([label]),
            num_nodes=graph.size,
        )


def _network(n_types: int, n_subtokens: int, classes: int, dim: int, steps: int, pooling: str):
    import torch
    from torch import nn
    from torch_geometric.nn import MessagePassing
    from torch_geometric.utils import scatter, softmax

    class TypedGatedConv(MessagePassing):
        """One GGNN propagation step: a linear message per edge type, summed, then a GRU."""

        def __init__(self) -> None:
            super().__init__(aggr="add")
            self.messages = nn.Parameter(torch.empty(NUM_EDGE_TYPES, dim, dim))
            nn.init.xavier_uniform_(self.messages)
            self.gru = nn.GRUCell(dim, dim)

        def forward(self, h, edge_index, edge_type):
            incoming = self.propagate(edge_index, x=h, edge_type=edge_type)
            return self.gru(incoming, h)

        def message(self, x_j, edge_type):
            out = torch.zeros_like(x_j)
            for kind in range(NUM_EDGE_TYPES):
                chosen = edge_type == kind
                out[chosen] = x_j[chosen] @ self.messages[kind]
            return out

    class GGNNClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.type_embedding = nn.Embedding(n_types, dim)
            self.subtoken_embedding = nn.Embedding(n_subtokens, dim, padding_idx=0)
            self.step = TypedGatedConv()  # the same weights every step, as GGNN
            if pooling == "softmax-dot":
                self.attention = nn.Parameter(torch.randn(dim) / dim**0.5)  # the global vector a
            else:
                self.gate = nn.Linear(2 * dim, 1)  # scores [h_T, h_0]
                self.transform = nn.Linear(2 * dim, dim)
            self.head = nn.Linear(dim, classes)

        def states(self, types, subtokens, edge_index, edge_type):
            """(h_T, h_0): every node's state after the T steps, and before them."""
            mask = (subtokens > 0).float().unsqueeze(-1)
            words = (self.subtoken_embedding(subtokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
            h0 = self.type_embedding(types) + words
            h = h0
            for _ in range(steps):
                h = self.step(h, edge_index, edge_type)
            return h, h0

        def pool(self, h, h0, batch, num_graphs):
            """(y per graph, alpha per node), by the pooling's formula (see ``POOLINGS``)."""
            if pooling == "softmax-dot":
                attention = softmax(h @ self.attention, batch, num_nodes=h.shape[0])
                values = h
            else:
                both = torch.cat([h, h0], dim=-1)
                score = self.gate(both).squeeze(-1)
                attention = (
                    torch.sigmoid(score)
                    if pooling == "sigmoid-gate"
                    else softmax(score, batch, num_nodes=h.shape[0])
                )
                values = torch.tanh(self.transform(both))
            pooled = scatter(
                attention.unsqueeze(-1) * values, batch, dim=0, dim_size=num_graphs, reduce="sum"
            )
            return pooled, attention

        def forward(self, types, subtokens, edge_index, edge_type, batch, num_graphs):
            h, h0 = self.states(types, subtokens, edge_index, edge_type)
            pooled, attention = self.pool(h, h0, batch, num_graphs)
            return self.head(pooled), attention

    return GGNNClassifier()


class GraphClassifier:
    """Program graphs -> classes, with node attention (AutoFocus's encoder)."""

    encoder = "ggnn"

    def __init__(
        self,
        vocabulary: GraphVocabulary,
        classes: list[str],
        language: str,
        dim: int = 64,
        steps: int = 6,
        pooling: str = DEFAULT_POOLING,
        seed: int = 0,
    ) -> None:
        import torch

        pooling = resolve_pooling(pooling)  # an old checkpoint's name too
        torch.manual_seed(seed)
        self.vocabulary, self.classes, self.language = vocabulary, classes, language
        self.dim, self.steps, self.pooling, self.seed = dim, steps, pooling, seed
        self.net = _network(
            len(vocabulary.types), len(vocabulary.subtokens), len(classes), dim, steps, pooling
        )
        self._graphs: dict[str, ProgramGraph] = {}

    def graph(self, code: str) -> ProgramGraph:
        if code not in self._graphs:
            self._graphs[code] = program_graph(code, self.language)
        return self._graphs[code]

    def batch(self, graphs: list[ProgramGraph], labels: list[int] | None = None):
        """The graphs as one torch-geometric ``Batch`` (its ``batch`` maps node -> graph)."""
        from torch_geometric.data import Batch

        labels = labels or [0] * len(graphs)
        return Batch.from_data_list(
            [self.vocabulary.data(g, y) for g, y in zip(graphs, labels, strict=True)]
        )

    def _forward(self, graphs: list[ProgramGraph], labels: list[int] | None = None):
        batch = self.batch(graphs, labels)
        logits, attention = self.net(
            batch.types,
            batch.subtokens,
            batch.edge_index,
            batch.edge_type,
            batch.batch,
            len(graphs),
        )
        return logits, attention, batch

    def predict_graphs(
        self, graphs: list[ProgramGraph], batch_size: int = 32
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Class probabilities (n x classes) and each graph's node attention."""
        import torch

        self.net.eval()
        probabilities, attentions = [], []
        with torch.no_grad():
            for begin in range(0, len(graphs), batch_size):
                part = graphs[begin : begin + batch_size]
                logits, attention, batch = self._forward(part)
                probabilities.append(torch.softmax(logits, -1).numpy())
                for index in range(len(part)):
                    attentions.append(attention[batch.batch == index].numpy())
        if not probabilities:
            return np.zeros((0, len(self.classes))), []
        return np.concatenate(probabilities), attentions

    def predict(self, codes: list[str], batch_size: int = 32):
        return self.predict_graphs([self.graph(c) for c in codes], batch_size)

    def accuracy(self, samples: list[Sample]) -> float:
        return accuracy_of(self.predict, samples)

    def fit(
        self,
        dataset: LabDataset,
        epochs: int = 60,
        patience: int = 10,
        batch_size: int = 16,
        learning_rate: float = 1e-3,
        progress=None,
    ) -> dict:
        """Train with early stopping on validation accuracy; keeps the best weights."""
        import torch

        rng = np.random.default_rng(self.seed)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        graphs = [self.graph(s.code) for s in dataset.train]
        labels = [s.label for s in dataset.train]

        def one_epoch() -> float:
            self.net.train()
            order = rng.permutation(len(graphs))
            total = 0.0
            for begin in range(0, len(order), batch_size):
                rows = order[begin : begin + batch_size]
                logits, _, _ = self._forward([graphs[i] for i in rows])
                loss = torch.nn.functional.cross_entropy(
                    logits, torch.tensor([labels[i] for i in rows])
                )
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
                optimiser.step()
                total += loss.item() * len(rows)
            return total / len(order)

        return early_stopping(
            self.net, one_epoch, lambda: self.accuracy(dataset.valid), epochs, patience, progress
        )

    # ---- persistence (safetensors + JSON; never pickle) -----------------------------------
    def save(self, directory: str | Path) -> None:
        meta = {
            "encoder": self.encoder,
            "types": self.vocabulary.types[1:],
            "subtokens": self.vocabulary.subtokens[2:],
            "classes": self.classes,
            "language": self.language,
            "dim": self.dim,
            "steps": self.steps,
            "pooling": self.pooling,
            "seed": self.seed,
        }
        save_weights(self.net, directory, meta)

    @classmethod
    def load(cls, directory: str | Path) -> GraphClassifier:
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / "classifier.json").read_text())
        model = cls(
            GraphVocabulary(meta["types"], meta["subtokens"]),
            meta["classes"],
            meta["language"],
            meta["dim"],
            meta["steps"],
            meta["pooling"],
            meta["seed"],
        )
        model.net.load_state_dict(load_file(directory / "model.safetensors"))
        model.net.eval()
        return model


def load_classifier(directory: str | Path):
    """The classifier saved in ``directory``, whichever encoder it has."""
    directory = Path(directory)
    meta = json.loads((directory / "classifier.json").read_text())
    if meta.get("encoder") == "ggnn":
        return GraphClassifier.load(directory)
    from codefocus.lab.classifier import CodeClassifier

    return CodeClassifier.load(directory)


def build_classifier(dataset: LabDataset, encoder: str, seed: int, pooling: str = DEFAULT_POOLING):
    """A fresh classifier of the given encoder (``transformer`` or ``ggnn``) for a dataset."""
    if encoder == "ggnn":
        graphs = [program_graph(s.code, dataset.language) for s in dataset.train]
        return GraphClassifier(
            GraphVocabulary.build(graphs),
            dataset.classes,
            dataset.language,
            pooling=pooling,
            seed=seed,
        )
    from codefocus.lab.classifier import CodeClassifier, Vocabulary

    return CodeClassifier(
        Vocabulary.build(dataset.train, dataset.language),
        dataset.classes,
        dataset.language,
        seed=seed,
    )
