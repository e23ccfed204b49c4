import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest

from codefocus.data.labels import CATEGORIES, load_labels, read_label_rows
from codefocus.data.tasks import (
    Task,
    get_task,
    load_humaneval,
    load_mbpp,
    load_sanitized_mbpp,
    load_tasks,
    parse_task_ref,
)
from codefocus.errors import DataError, UnknownNameError


def test_benchmark_sizes(data_dir):
    assert len(load_humaneval(data_dir)) == 164
    mbpp = load_mbpp(data_dir)
    assert len(mbpp) == 974
    assert len(load_sanitized_mbpp(data_dir)) == 426
    assert all("\r" not in t.reference_solution and "\r" not in t.tests for t in mbpp)


def test_entry_points_are_defined_by_the_reference_solution(data_dir):
    for task in load_humaneval(data_dir) + load_mbpp(data_dir):
        assert task.entry_point, task.task_id
        assert f"def {task.entry_point}" in task.prompt + task.reference_solution, task.task_id
        assert task.entry_point in task.tests, task.task_id


def test_task_json_round_trip(data_dir):
    task = get_task("mbpp/11", data_dir)
    assert task.human_spans
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task


def test_task_refs():
    assert parse_task_ref("HumanEval/3") == ("humaneval", 3)
    assert parse_task_ref("mbpp/11") == ("mbpp", 11)
    with pytest.raises(UnknownNameError):
        parse_task_ref("apps/1")
    with pytest.raises(UnknownNameError):
        load_tasks("apps")


def test_humaneval_label_repair_counts(data_dir):
    report = load_labels("humaneval", data_dir).report
    assert report.rows == 1092
    assert report.placeholders == 0
    assert report.repaired["empty word restored from its offsets"] == 6
    assert report.dropped == {"whitespace-only label": 2}
    assert report.kept == 1090
    assert report.rows == report.kept + sum(report.dropped.values())
    assert report.tasks_with_labels == 164


def test_mbpp_label_repair_counts(data_dir):
    report = load_labels("mbpp", data_dir).report
    assert report.rows == 7863
    assert report.placeholders == 972
    assert report.repaired["inclusive span end made exclusive"] == 6891
    assert report.dropped == {"unknown category 'type2'": 2}
    assert report.repaired["offsets did not match the word; relocated"] == 97
    assert report.kept == 6889
    assert report.rows == report.placeholders + report.kept + sum(report.dropped.values())
    assert report.tasks_without_labels == [274]


def test_repaired_spans_point_at_their_words_on_the_official_prompt(data_dir):
    for benchmark in ("humaneval", "mbpp"):
        for task in load_tasks(benchmark, data_dir):
            for span in task.human_spans:
                assert span.category in CATEGORIES
                assert task.prompt[span.start : span.end] == span.word
                assert span.word == span.word.strip()


def test_known_repairs(data_dir):
    # MBPP 602: "in" was stored at (28, 29), inside "find"; the real word is "in a given string"
    task = get_task("mbpp/602", data_dir)
    words = {(s.word, s.start) for s in task.human_spans}
    assert ("in", 61) in words and ("in", 28) not in words
    # HumanEval 0: offsets were on the whitespace-reduced prompt; now on the official one
    he0 = get_task("humaneval/0", data_dir)
    first = min(he0.human_spans, key=lambda s: s.start)
    assert he0.prompt[first.start : first.end] == "List[float]"
    # "None" labels come back from their offsets
    he12 = get_task("humaneval/12", data_dir)
    assert any(s.word == "None" for s in he12.human_spans)


def _copy_data(data_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    for sub in ("humaneval", "mbpp", "programmer-attention"):
        shutil.copytree(data_dir / sub, target / sub)
    return target


def test_malformed_csv_row_is_one_line_error(data_dir, tmp_path):
    copy = _copy_data(data_dir, tmp_path)
    csv_path = copy / "programmer-attention" / "mbpp.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(5, '9999,601,"Write a function",Write,Operator,"(zero, 4)"\n')
    csv_path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"mbpp.csv:6: malformed index range"):
        read_label_rows("mbpp", copy)


def test_missing_files_and_malformed_json(data_dir, tmp_path):
    with pytest.raises(DataError, match="missing data file"):
        load_mbpp(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_humaneval(tmp_path / "absent")
    bad = tmp_path / "humaneval"
    bad.mkdir()
    with gzip.open(bad / "HumanEval.jsonl.gz", "wt") as handle:
        handle.write('{"task_id": "HumanEval/0"\n')
    with pytest.raises(DataError, match=r"HumanEval.jsonl.gz:1: malformed JSON line"):
        load_humaneval(tmp_path)


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv("CODEFOCUS_DATA", str(data_dir))
    assert len(load_humaneval()) == 164
    monkeypatch.delenv("CODEFOCUS_DATA")
    with pytest.raises(DataError, match="CODEFOCUS_DATA"):
        load_humaneval()


def test_fetch_keeps_files_that_are_present_with_the_right_hash(data_dir, tmp_path):
    from codefocus.data.fetch import SOURCES, fetch

    target = _copy_data(data_dir, tmp_path)
    results = fetch(target)
    assert [r.status for r in results] == ["present"] * len(SOURCES)
    assert all(s.url.startswith("https://") for s in SOURCES)


@pytest.mark.parametrize("benchmark", ["humaneval", "mbpp"])
def test_stored_ranges_read_as_a_python_parser_reads_them(data_dir, benchmark):
    """The fast reading of "(a, b)" gives what ``ast.literal_eval`` gives, on every stored row."""
    import ast

    from codefocus.data.labels import _COLUMNS

    range_column = _COLUMNS[benchmark][4]
    path = data_dir / "programmer-attention" / f"{benchmark}.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        texts = [r[range_column] for r in csv.DictReader(handle)]
    expected = [tuple(int(v) for v in ast.literal_eval(t)[:2]) if t else None for t in texts]
    rows = read_label_rows(benchmark, data_dir)
    assert [(r.start, r.end) if r.start is not None else None for r in rows] == expected


def test_label_rows_are_read_again_when_the_file_changes(data_dir, tmp_path):
    shutil.copytree(data_dir / "programmer-attention", tmp_path / "programmer-attention")
    first = read_label_rows("humaneval", tmp_path)
    assert read_label_rows("humaneval", tmp_path) == first
    path = tmp_path / "programmer-attention" / "humaneval.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields, records = reader.fieldnames, list(reader)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records[:-1])
    assert len(read_label_rows("humaneval", tmp_path)) == len(first) - 1
