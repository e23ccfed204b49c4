"""The unit runner that studies and probes share (``codefocus.runs``), typed units, and the probe
rankings' written form."""

from __future__ import annotations

import json

import pytest

from codefocus.errors import InvalidArgumentError
from codefocus.probes import runner as probes
from codefocus.probes.rankings import Ranking
from codefocus.runs.units import ResultSettings, Unit, UnitResult, UnitRunner
from codefocus.studies import runner as studies
from codefocus.studies.store import StudyStore

# ---- rankings ---------------------------------------------------------------------------------
WRITTEN = {
    "bert_masking": Ranking(kind="method", method="bert_masking"),
    "programmers": Ranking(kind="programmers"),
    "random:0": Ranking(kind="random", seed=0),
    "random:-3": Ranking(kind="random", seed=-3),
    "lowest:x": Ranking(kind="lowest", method="x"),
    "lowest:occlusion": Ranking(kind="lowest", method="occlusion"),
}


@pytest.mark.parametrize("text", list(WRITTEN))
def test_a_ranking_reads_and_writes_its_string(text):
    ranking = Ranking.parse(text)
    assert ranking == WRITTEN[text]
    assert str(ranking) == text
    assert Ranking.parse(str(ranking)) == ranking


@pytest.mark.parametrize(
    "text",
    ["", "random", "lowest", "random:", "random:x", "random:1.5", "random:1:2", "lowest:",
     "lowest:random", "lowest:a b", "shap:0", "two words", ":x", "programmers:1", 3, None],
)  # fmt: skip
def test_a_bad_ranking_is_one_line_naming_it(text):
    with pytest.raises(InvalidArgumentError) as error:
        Ranking.parse(text)
    message = str(error.value)
    assert "\n" not in message
    assert repr(text) in message
    assert "random:<seed>" in message  # and says what would do


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "shuffled"},
        {"kind": "random"},
        {"kind": "random", "seed": "0"},
        {"kind": "random", "seed": True},
        {"kind": "random", "seed": 0, "method": "x"},
        {"kind": "lowest"},
        {"kind": "method", "method": "random"},
        {"kind": "programmers", "seed": 1},
    ],
)
def test_a_ranking_checks_its_fields(fields):
    with pytest.raises(InvalidArgumentError):
        Ranking(**fields)


def test_every_ranking_a_probe_run_stores_round_trips():
    config = probes.ProbeConfig(rank_by=("occlusion", "programmers", "random"), random_seeds=(0, 7))
    rankings = probes.rankings_for(config)
    assert [str(r) for r in rankings] == [
        "occlusion",
        "programmers",
        "random:0",
        "random:7",
        "lowest:occlusion",
    ]
    assert all(Ranking.parse(str(r)) == r for r in rankings)


# ---- units ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["generation", "verdict", "method:reading_all", "ranking:random:0", "probes"]
)
def test_a_unit_reads_back_the_kind_the_store_keeps(key):
    unit = Unit.from_key("tiny", "Mbpp/11", key)
    assert unit.key == key
    assert str(unit) == f"tiny Mbpp/11 {key}"


def test_a_unit_checks_its_kind():
    for kind, name in (("attribution", ""), ("method", ""), ("generation", "x")):
        with pytest.raises(InvalidArgumentError):
            Unit("tiny", "Mbpp/11", kind, name)


def test_result_settings_compare_what_changes_a_result():
    named = ResultSettings(keys=("protocol", "scope"), legacy={"protocol": "codefocus"})
    assert named.changed({}, {"protocol": "codefocus", "scope": None}) == []  # legacy store
    assert named.changed({"scope": "study"}, {"protocol": "codefocus", "scope": "prompt"}) == [
        "scope"
    ]
    assert named.changed({}, {"protocol": "kou2024"}) == ["protocol"]
    assert named.changed({"limit": 1}, {"limit": 2, "protocol": "codefocus"}) == []
    every = ResultSettings(ignored=("limit",))
    assert every.changed({"limit": 1, "k": [1]}, {"limit": 2, "k": [1]}) == []
    assert every.changed({"k": [1]}, {"k": [1], "seed": None}) == ["seed"]  # absent != None


# ---- the runner, as studies and probes use it ---------------------------------------------------
CLIENTS = {
    # store, result settings, units, a configuration and one with a result setting changed
    "study": (
        studies.STORE_NAME,
        studies.STUDY_SETTINGS,
        ["generation", "verdict", "method:reading_all", "method:occlusion"],
        {"models": ["tiny"], "protocol": "codefocus", "scope": None, "dtype": "auto", "limit": 2},
        {"scope": "prompt"},
    ),
    "probe": (
        probes.STORE_NAME,
        probes.PROBE_SETTINGS,
        ["generation", "verdict", "ranking:occlusion", "ranking:random:0", "probes"],
        {"model": "tiny", "ks": [1, 3], "substitutes": "wordnet", "limit": 2},
        {"ks": [1]},
    ),
}


class Stop(BaseException):
    """An interruption (a killed process), not a recoverable failure."""


@pytest.mark.parametrize("client", list(CLIENTS))
def test_the_unit_runner_resumes_where_it_stopped(tmp_path, client):
    store_name, settings, keys, config, change = CLIENTS[client]
    units = [Unit.from_key("tiny", task, key) for task in ("Mbpp/11", "Mbpp/12") for key in keys]
    failing = units[2]
    calls: list[Unit] = []
    recorded: list[UnitResult] = []

    def compute(unit: Unit, stop_at: Unit | None = None):
        calls.append(unit)
        if unit == stop_at:
            raise Stop
        if unit == failing:
            raise RuntimeError("out of memory")
        return {"unit": str(unit), "value": [len(calls)]}

    def refusal(key, stored, new):
        return f"holds {key}={stored!r}, not {new!r}"

    path = tmp_path / store_name
    # the first run is killed in the middle of its fifth unit
    with pytest.raises(Stop), UnitRunner(path, recorded.append) as runner:
        assert runner.claim(config, settings, refusal) is None
        for unit in units:
            runner.run(unit, lambda u=unit: compute(u, stop_at=units[4]))
    assert calls == units[:5]
    assert [r.unit for r in recorded] == units[:4]
    assert [r.unit for r in recorded if r.failed] == [failing]
    assert recorded[2].error == "RuntimeError: out of memory" and recorded[2].seconds == 0.0
    first = {r.unit: r.payload for r in recorded}

    # the next run computes only what is missing; a stored failure is not retried
    calls.clear()
    recorded.clear()
    with UnitRunner(path, recorded.append) as runner:
        grown = {**config, "limit": 3}  # more tasks: not a result setting
        assert runner.claim(grown, settings, refusal) == config
        payloads = [runner.run(unit, lambda u=unit: compute(u)) for unit in units]
    assert calls == units[4:]
    assert [r.unit for r in recorded] == units[4:]
    assert payloads[:4] == [first[u] for u in units[:4]]  # read back, as stored
    assert payloads[2] is None
    assert all(p is not None for i, p in enumerate(payloads) if i != 2)

    # what is stored: each unit once, under the kind string a store written before had
    store = StudyStore(path)
    try:
        rows = store.rows()
        assert sorted((r["task_id"], r["kind"]) for r in rows) == sorted(
            (u.task_id, u.key) for u in units
        )
        assert {
            r["status"] for r in rows if r["kind"] == failing.key and r["task_id"] == "Mbpp/11"
        } == {"failed"}
        assert store.meta("config") == json.loads(json.dumps({**config, "limit": 3}))
    finally:
        store.close()

    # a run with another value of a result setting is refused, and nothing is run
    calls.clear()
    with UnitRunner(path) as runner:
        with pytest.raises(InvalidArgumentError, match=next(iter(change))):
            runner.claim({**config, **change}, settings, refusal)
    assert calls == []


def test_a_study_store_written_before_the_unit_types_resumes(tmp_path, data_dir):
    """Rows as earlier versions wrote them (kind strings, JSON payloads) read back as typed
    work: a stored generation is reused, stored units are not redone, a failed generation
    stops its task."""
    from codefocus.data.tasks import get_task
    from codefocus.studies.work import StoredGeneration, todo_for

    config = studies.StudyConfig(
        models=("tiny",), methods=("reading_all", "occlusion"), data_dir=str(data_dir)
    )
    done, failed = get_task("humaneval/0", data_dir), get_task("humaneval/2", data_dir)
    store = StudyStore(tmp_path / studies.STORE_NAME)
    payload = {"model_input": done.prompt, "completion": "    return 1\n", "token_ids": [5, 6]}
    store.put("tiny", done.task_id, "generation", payload)
    store.put("tiny", done.task_id, "verdict", {"passed": False, "result": "failed"})
    store.put("tiny", done.task_id, "method:reading_all", {"any": "payload"})
    store.put("tiny", failed.task_id, "generation", None, error="ContextTooLongError: too long")
    store.close()
    methods = ["reading_all", "occlusion"]
    with UnitRunner(tmp_path / studies.STORE_NAME) as runner:
        todo = todo_for(runner, "tiny", done, methods, config)
        stopped = todo_for(runner, "tiny", failed, methods, config)
    assert todo.generation == StoredGeneration("    return 1\n", [5, 6])
    assert (todo.verdict, todo.methods, todo.stored_methods) == (
        False,
        ("occlusion",),
        ("reading_all",),
    )
    assert not todo.complete
    assert stopped.stopped and stopped.complete
