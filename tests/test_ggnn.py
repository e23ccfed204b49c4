"""AutoFocus with a GGNN: program graphs from tree-sitter, subgraph deletion, the network on
torch-geometric, the size control, and `autofocus train --encoder ggnn` + analyze + show."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from codefocus.lab.autofocus import analyse, partial_correlation, summary
from codefocus.lab.graphs import EDGE_KINDS, program_graph, subtokens
from codefocus.lab.parsing import parse

JAVA = """class Sort {
  void sort(int[] a) {
    int n = a.length;
    for (int i = 0; i < n; i++) {
      if (a[i] > a[i + 1]) {
        swap(a, i);
      }
    }
    System.out.println(n);
  }
}
"""
CPP = """#include <vector>
int total(std::vector<int>& v) {
  int sum = 0;
  for (int x : v) {
    if (x > 0) sum += x;
  }
  return sum;
}
"""
PYTHON = "def f(x):\n    y = 1\n    if x:\n        y += x\n    return y\n"


@pytest.mark.parametrize("code,language", [(JAVA, "java"), (CPP, "cpp"), (PYTHON, "python")])
def test_graph_statements_are_the_parsed_statements(code, language):
    graph = program_graph(code, language)
    parsed = parse(code, language)
    assert graph.statement_spans == [(s.start, s.end) for s in parsed.statements]
    assert len(graph.statement_nodes) == len(parsed.statements) >= 3
    # a statement's subtree holds its nested statements' nodes
    for i, inner in enumerate(parsed.statements):
        for j, outer in enumerate(parsed.statements):
            if i != j and outer.contains(inner.start, inner.end):
                assert set(graph.statement_nodes[i]) < set(graph.statement_nodes[j])
    # every edge kind appears, in both directions
    kinds = {k for _, _, k in graph.edges}
    assert kinds == set(range(2 * len(EDGE_KINDS)))
    forward = {(s, t, k) for s, t, k in graph.edges if k < len(EDGE_KINDS)}
    backward = {(t, s, k - len(EDGE_KINDS)) for s, t, k in graph.edges if k >= len(EDGE_KINDS)}
    assert forward == backward


def test_data_flow_edges_follow_names():
    graph = program_graph("def f(x):\n    y = x\n    y = y + 1\n    return y\n", "python")
    names = {
        i: parts for i, parts in enumerate(graph.node_tokens) if graph.node_types[i] == "identifier"
    }
    last_write = EDGE_KINDS.index("last_write")
    ys = [i for i, parts in names.items() if parts == ["y"]]
    # the y in "return y" reads the y written by "y = y + 1"
    writes = {(s, t) for s, t, k in graph.edges if k == last_write}
    assert (ys[-1], ys[1]) in writes
    assert subtokens("maxValue") == ["max", "value"] and subtokens("MAX_SIZE") == ["max", "size"]


def test_deleting_a_statement_removes_its_subgraph():
    graph = program_graph(JAVA, "java")
    loop = [s.kind for s in parse(JAVA, "java").statements].index("for_statement")
    smaller = graph.delete_statements({loop})
    assert smaller.size == graph.size - len(graph.statement_nodes[loop])
    assert all(s < smaller.size and t < smaller.size for s, t, _ in smaller.edges)
    # the nested statements went with the loop
    for index, nodes in enumerate(smaller.statement_nodes):
        nested = set(graph.statement_nodes[index]) <= set(graph.statement_nodes[loop])
        assert (nodes == []) == nested


def test_partial_correlation_equals_the_residual_definition():
    rng = np.random.default_rng(0)
    c = rng.normal(size=30)
    a = 2 * c + rng.normal(size=30)
    b = -c + rng.normal(size=30)
    # residuals of a and b after a least-squares fit on c, then their correlation
    design = np.vstack([c, np.ones_like(c)]).T
    ra = a - design @ np.linalg.lstsq(design, a, rcond=None)[0]
    rb = b - design @ np.linalg.lstsq(design, b, rcond=None)[0]
    assert partial_correlation(a, b, c) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert partial_correlation(a, b, np.ones(30)) is None


@pytest.fixture(scope="module")
def tiny_dataset(data_dir):
    from codefocus.lab.datasets import load_algorithms

    return load_algorithms(data_dir, per_class=6, seed=0)


def _untrained(pooling: str | None = None, **options):
    """A small GGNN on a vocabulary of two Java programs (no data, no training)."""
    from codefocus.lab.ggnn import GraphClassifier, GraphVocabulary

    other = JAVA.replace("swap(a, i);", "a[i] = a[i + 1] * 2;")
    graphs = [program_graph(JAVA, "java"), program_graph(other, "java")]
    vocabulary = GraphVocabulary.build(graphs, min_count=1)
    kwargs = {} if pooling is None else {"pooling": pooling}
    model = GraphClassifier(vocabulary, ["a", "b", "c"], "java", dim=16, steps=2, **kwargs)
    return model, graphs


def test_the_default_pooling_is_the_papers_softmax_of_h_dot_a():
    """alpha_i = softmax_i(h_i^T a) over each graph's nodes, y = sum alpha_i h_i (Bui et al.),
    checked against a naive per-graph computation from the final node states."""
    import torch

    model, graphs = _untrained()
    assert model.pooling == "softmax-dot"
    probabilities, attentions = model.predict_graphs(graphs)
    batch = model.batch(graphs)
    with torch.no_grad():
        h, _ = model.net.states(batch.types, batch.subtokens, batch.edge_index, batch.edge_type)
        a = model.net.attention
        for index, graph in enumerate(graphs):
            states = h[batch.batch == index].double()
            scores = [float(state @ a.double()) for state in states]
            top = max(scores)
            weights = np.array([np.exp(s - top) for s in scores])
            weights /= weights.sum()
            assert len(attentions[index]) == graph.size
            assert np.allclose(attentions[index], weights, atol=1e-6)
            assert attentions[index].sum() == pytest.approx(1.0, abs=1e-5)
            # the program vector is the attention-weighted sum of the node states
            y = (torch.tensor(weights)[:, None] * states).sum(0).float()
            expected = torch.softmax(model.net.head(y), -1).numpy()
            assert np.allclose(probabilities[index], expected, atol=1e-5)


def test_every_pooling_has_a_descriptive_name_and_the_old_ones_warn(tmp_path):
    import json

    from codefocus.errors import InvalidArgumentError
    from codefocus.lab.ggnn import DEFAULT_POOLING, POOLINGS, load_classifier, resolve_pooling

    assert DEFAULT_POOLING == "softmax-dot"
    assert set(POOLINGS) == {"softmax-dot", "sigmoid-gate", "softmax-gate"}
    for old, new in (("sigmoid", "sigmoid-gate"), ("softmax", "softmax-gate")):
        with pytest.warns(DeprecationWarning, match=f"{old!r} is now {new!r}"):
            assert resolve_pooling(old) == new
    with pytest.raises(InvalidArgumentError, match="softmax-dot, sigmoid-gate, softmax-gate"):
        resolve_pooling("max")
    gated, graphs = _untrained("sigmoid-gate")
    attention = gated.predict_graphs(graphs)[1]
    assert all(((a > 0) & (a < 1)).all() for a in attention)  # a gate, not a distribution
    softly, _ = _untrained("softmax-gate")
    assert all(a.sum() == pytest.approx(1.0, abs=1e-5) for a in softly.predict_graphs(graphs)[1])
    # a checkpoint saved under the old name still loads, as the new one
    gated.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "classifier.json"
    meta = json.loads(meta_path.read_text())
    assert meta["pooling"] == "sigmoid-gate"
    meta_path.write_text(json.dumps({**meta, "pooling": "sigmoid"}))
    with pytest.warns(DeprecationWarning):
        again = load_classifier(tmp_path / "m")
    assert again.pooling == "sigmoid-gate"
    assert np.allclose(again.predict_graphs(graphs)[0], gated.predict_graphs(graphs)[0])


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["softmax-dot", "sigmoid-gate", "softmax-gate"])
def test_ggnn_trains_saves_and_analyses(tiny_dataset, tmp_path, pooling):
    from codefocus.lab.ggnn import build_classifier, load_classifier

    model = build_classifier(tiny_dataset, "ggnn", seed=0, pooling=pooling)
    result = model.fit(tiny_dataset, epochs=2)
    assert len(result["history"]) == 2
    codes = [s.code for s in tiny_dataset.test[:3]]
    probabilities, attentions = model.predict(codes)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    for code, attention in zip(codes, attentions, strict=True):
        assert len(attention) == model.graph(code).size
        if pooling.startswith("softmax"):
            assert attention.sum() == pytest.approx(1.0, abs=1e-4)
        else:
            assert ((attention > 0) & (attention < 1)).all()
    model.save(tmp_path / "m")
    again = load_classifier(tmp_path / "m")
    assert np.allclose(again.predict(codes)[0], probabilities, atol=1e-6)
    sample = tiny_dataset.test[0]
    analysis = analyse(sample.code, sample.label, model)
    graph = model.graph(sample.code)
    assert analysis.encoder == "ggnn"
    assert analysis.sizes == [len(nodes) for nodes in graph.statement_nodes]
    # a(s): the node attention summed over the statement's subtree
    attention = model.predict_graphs([graph])[1][0]
    expected = [attention[nodes].sum() for nodes in graph.statement_nodes]
    assert np.allclose(analysis.attention, expected, atol=1e-6)
    # delta(s): the confidence change when the statement's subgraph is deleted
    first = model.predict_graphs([graph.delete_statements({0})])[0][0, sample.label]
    assert analysis.delta[0] == pytest.approx(first - analysis.confidence, abs=1e-6)
    figures = summary([analysis])
    assert "partial_mean" in figures and "size_pearson_mean" in figures


@pytest.mark.slow
def test_autofocus_cli_with_the_ggnn(tmp_path, data_dir):
    env = {**os.environ, "CODEFOCUS_DATA": str(data_dir)}

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "codefocus", *args], capture_output=True, text=True, env=env
        )

    out = tmp_path / "af"
    trained = run(
        "autofocus", "train", "--out", str(out), "--encoder", "ggnn", "--per-class", "5",
        "--epochs", "2",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    meta = json.loads((out / "model" / "classifier.json").read_text())
    assert meta["encoder"] == "ggnn" and (out / "model" / "model.safetensors").is_file()
    analyzed = run("autofocus", "analyze", str(out), "--limit", "3")
    assert analyzed.returncode == 0, analyzed.stderr
    stored = json.loads((out / "analysis.json").read_text())
    assert len(stored["programs"]) == 3 and stored["programs"][0]["encoder"] == "ggnn"
    shown = run("autofocus", "show", str(out), "--index", "0", "--format", "html", "--out",
                str(tmp_path / "p.html"))  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "rgb(" in (tmp_path / "p.html").read_text()
    absolute = run("autofocus", "show", str(out), "--index", "0", "--format", "html", "--out",
                   str(tmp_path / "a.html"), "--grey", "absolute")  # fmt: skip
    assert absolute.returncode == 0, absolute.stderr
    assert "rgb(" in (tmp_path / "a.html").read_text()
    bad = run("autofocus", "train", "--out", str(tmp_path / "x"), "--encoder", "gcn")
    assert bad.returncode == 2 and "--encoder" in bad.stderr


@pytest.fixture()
def autofocus_run():
    """benchmarks/autofocus_run.py as a module."""
    from benchmark_modules import load_benchmark

    return load_benchmark("autofocus_run")


def test_the_benchmark_reports_across_seeds_and_resumes(
    autofocus_run, monkeypatch, tmp_path, capsys
):
    """Mean ± sd across seeds, the last line's format, one entry per encoder/pooling/seed
    written after each, and a rerun that skips what is done (training is faked)."""
    import re
    from types import SimpleNamespace

    import codefocus.lab.datasets

    trained = []

    def fake(dataset, encoder, pooling, seed, settings):
        trained.append((encoder, pooling, seed))
        figures = {name: 0.1 * (seed + 1) for name in autofocus_run.ACROSS}
        figures["pearson_mean"] = None if seed == 2 else 0.5 + seed  # no correlation: skipped
        return {"settings": settings, "test_accuracy": 0.8 + 0.1 * seed, "summary": figures}

    dataset = SimpleNamespace(train=[1], valid=[1], test=[1])
    monkeypatch.setattr(codefocus.lab.datasets, "load_algorithms", lambda **_: dataset)
    monkeypatch.setattr(autofocus_run, "train_and_analyse", fake)
    out = tmp_path / "af.json"
    argv = ["--seeds", "3", "--out", str(out), "--encoder", "ggnn,transformer"]
    autofocus_run.main([*argv, "--pooling", "softmax-dot,sigmoid-gate"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(trained) == 9
    assert lines[-2] == (
        "ggnn: test accuracy 0.900±0.100 pearson mean 1.000±0.707 partial 0.200±0.100 seeds 3"
    )
    assert re.fullmatch(
        r"transformer: test accuracy \S+±\S+ pearson mean \S+±\S+ partial \S+±\S+ seeds 3",
        lines[-1],
    )
    record = json.loads(out.read_text())
    assert sorted(record["runs"]) == sorted(
        f"{e}/{p}/seed{s}"
        for e, p in [
            ("ggnn", "softmax-dot"),
            ("ggnn", "sigmoid-gate"),
            ("transformer", "softmax-dot"),
        ]
        for s in range(3)
    )
    stats = record["across_seeds"]["ggnn/softmax-dot"]
    assert stats["pearson_mean"] == {"mean": 1.0, "sd": pytest.approx(0.7071, abs=1e-4), "seeds": 2}
    # resumed: nothing trained again; other settings or --fresh: trained again
    trained.clear()
    autofocus_run.main([*argv, "--pooling", "softmax-dot,sigmoid-gate"])
    assert trained == [] and "skipped" in capsys.readouterr().out
    autofocus_run.main([*argv, "--limit", "5"])
    assert len(trained) == 6
    trained.clear()
    autofocus_run.main(["--seeds", "1", "--out", str(out), "--fresh"])
    assert trained == [("ggnn", "softmax-dot", 0)]
    assert list(json.loads(out.read_text())["runs"]) == ["ggnn/softmax-dot/seed0"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ggnn: test accuracy 0.800±nan") and last.endswith("seeds 1")
    # seeds run in parallel, each in its own file, then merged: nothing trained twice
    trained.clear()
    for seed in (1, 2):
        part = ["--first-seed", str(seed), "--seeds", "1", "--out", str(tmp_path / f"s{seed}.json")]
        autofocus_run.main(part)
    assert trained == [("ggnn", "softmax-dot", 1), ("ggnn", "softmax-dot", 2)]
    trained.clear()
    autofocus_run.main(
        [
            "--seeds",
            "3",
            "--out",
            str(out),
            "--merge",
            str(tmp_path / "s1.json"),
            str(tmp_path / "s2.json"),
        ]
    )
    assert trained == []
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ggnn: test accuracy 0.900±0.100") and last.endswith("seeds 3")


def test_the_benchmark_takes_the_old_pooling_names(autofocus_run):
    with pytest.warns(DeprecationWarning):
        args = autofocus_run.parse_arguments(["--pooling", "sigmoid"])
    assert args.pooling == ["sigmoid-gate"] and args.encoder == ["ggnn"]
    assert args.minimal_limit == autofocus_run.DEFAULT_MINIMAL_LIMIT
    with pytest.raises(SystemExit):
        autofocus_run.parse_arguments(["--encoder", "gcn"])
