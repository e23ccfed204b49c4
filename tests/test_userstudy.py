"""The user study end to end: `userstudy create` from a real study, `userstudy serve` on uvicorn,
two participants driven through the questionnaire by Playwright + Chromium (clicking the scales,
leaving and resuming), then `userstudy analyze` checked against statistics computed here
independently from the SQLite answers."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from scipy import stats

from codefocus.userstudy.analysis import holm, welch
from codefocus.userstudy.design import StudyDesign, participant_order

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
METHODS = ["reading_first", "reading_last", "reading_all"]
QUESTIONS = ["Q1", "Q2", "Q3"]


def cli(*args: str, data_dir=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if data_dir is not None:
        env["CODEFOCUS_DATA"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "codefocus", *args], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def us_dir(tmp_path_factory, data_dir) -> Path:
    """A three-task, three-method user study built by the CLI from a tiny-model study, with
    hostile text planted in every prompt and piece of code."""
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    root = tmp_path_factory.mktemp("userstudy")
    config = StudyConfig(
        models=("tiny",), methods=tuple(METHODS), limit=4, max_new_tokens=4, data_dir=str(data_dir)
    )
    run_study(config, root / "study")
    out = root / "us"
    made = cli(
        "userstudy", "create", str(root / "study"), "--out", str(out), "--methods",
        ",".join(METHODS), "--tasks", "3", "--k", "5", "--seed", "7", data_dir=data_dir,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    design = json.loads((out / "design.json").read_text())
    for task in design["tasks"]:  # spans stay valid: the hostile text goes after the prompt
        task["prompt"] += "# " + HOSTILE + "\n"
        task["code"] += "    # " + HOSTILE + "\n"
    (out / "design.json").write_text(json.dumps(design))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(us_dir):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "codefocus", "userstudy", "serve", str(us_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError(process.stderr.read().decode())
    yield url
    process.terminate()
    process.wait(timeout=10)


class Participant:
    """One simulated participant in a browser context of their own."""

    def __init__(self, browser, base: str, seed: int, design: StudyDesign) -> None:
        self.context = browser.new_context()
        self.base = base
        self.rng = random.Random(seed)
        self.design = design
        self.seen_tasks: list[str] = []  # task keys in the order shown, recognised by prompt
        self.clicked: dict[tuple[str, int, str], int] = {}  # (task, position, question) -> value
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def check_blind(self) -> None:
        content = self.page.content()
        for method in self.design.methods:
            assert method not in content, f"{method} shown to a participant"
        assert self.page.evaluate("window.__pwned === undefined")

    def task_key(self) -> str:
        prompt = self.page.inner_text("pre.prompt >> nth=0")
        (key,) = [t.key for t in self.design.tasks if t.prompt.split() == prompt.split()]
        return key

    def rate(self, position: int, question: str) -> None:
        value = self.rng.randint(1, 7)
        self.page.click(f"input[name='r-{position}-{question}'][value='{value}']")
        self.clicked[(self.task_key(), position, question)] = value

    def rate_page(self, skip_first: bool = False) -> None:
        for position in range(1, len(self.design.methods) + 1):
            for question in QUESTIONS:
                if skip_first and position == 1 and question == "Q1":
                    continue
                self.rate(position, question)

    def next(self) -> None:
        with self.page.expect_navigation():
            self.page.click("button[value=next]")


def test_two_participants_end_to_end(us_dir, server, browser, tmp_path):
    design = StudyDesign.load(us_dir)
    shots = Path(os.environ.get("CODEFOCUS_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    people = [Participant(browser, server, seed, design) for seed in (1, 2)]
    for n, person in enumerate(people):
        page = person.page
        page.goto(server + "/")
        person.check_blind()
        # no consent, no start
        page.click("button[type=submit]")
        assert "/p/" not in page.url
        page.check("input[name=consent]")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "/task/1" in page.url
        token = page.url.split("/p/")[1].split("/")[0]
        person.token = token
        person.check_blind()
        assert HOSTILE in page.inner_text("pre.prompt >> nth=0")  # shown as text
        assert HOSTILE in page.inner_text("pre.code")
        person.seen_tasks.append(person.task_key())
        # a first click is stored at once (no button pressed)...
        person.rate(1, "Q1")
        page.wait_for_selector(".saved:has-text('saved')")
        if n == 0:
            # ... so the participant can leave now and come back by the address
            page.screenshot(path=str(shots / "userstudy-task.png"), full_page=True)
            page.close()
            person.page = person.new_page()
            person.page.goto(f"{server}/p/{token}")
            page = person.page
            assert "/task/1" in page.url  # back at the first unanswered task
            value = person.clicked[(person.task_key(), 1, "Q1")]
            assert page.is_checked(f"input[name='r-1-Q1'][value='{value}']")
            person.rate_page(skip_first=True)
        else:
            person.rate_page(skip_first=True)
        for _ in range(len(design.tasks) - 1):
            person.next()
            person.check_blind()
            person.seen_tasks.append(person.task_key())
            person.rate_page()
        person.next()
        assert page.url.endswith("/final")
        page.fill("#Q4", f"participant {n}: yes, " + HOSTILE)
        page.fill("#Q5", "which words matter")
        page.fill("#Q6", "")
        with page.expect_navigation():
            page.click("button[value=finish]")
        assert page.url.endswith("/done")
        person.check_blind()
        assert person.errors == []
        assert all(url.startswith(server) for url in person.requests), person.requests

    # the orders: different between the two, and replayed from the design's seed
    orders = [participant_order(design, number) for number in (0, 1)]
    assert orders[0] != orders[1]
    for person, order in zip(people, orders, strict=True):
        assert tuple(person.seen_tasks) == order.tasks

    # every click is stored under the method that sat at that position for that participant
    db = sqlite3.connect(us_dir / "responses.sqlite")
    rows = db.execute(
        "SELECT token, task, method, position, question, value FROM ratings"
    ).fetchall()
    assert len(rows) == 2 * 3 * 3 * 3
    for person, order in zip(people, orders, strict=True):
        for (task, position, question), value in person.clicked.items():
            method = order.methods[task][position - 1]
            assert (person.token, task, method, position, question, value) in rows

    # analyze, and the same statistics computed independently from the stored rows
    analyzed = cli("userstudy", "analyze", str(us_dir), "--format", "json")
    assert analyzed.returncode == 0, analyzed.stderr
    result = json.loads(analyzed.stdout)
    by_key = {(s["method"], s["question"]): s for s in result["summaries"]}
    ratings: dict[tuple[str, str], list[int]] = {}
    for _, _, method, _, question, value in rows:
        ratings.setdefault((method, question), []).append(value)
    for (method, question), values in ratings.items():
        mean = sum(values) / len(values)
        assert by_key[(method, question)]["n"] == len(values) == 6
        assert by_key[(method, question)]["mean"] == pytest.approx(mean)
    for test in result["tests"]:
        a = ratings[(test["a"], test["question"])]
        b = ratings[(test["b"], test["question"])]
        expected = stats.ttest_ind(a, b, equal_var=False).pvalue
        if math.isnan(expected):
            assert test["p"] is None
        else:
            assert test["p"] == pytest.approx(expected)
    answers = dict(
        db.execute("SELECT question, count(*) FROM answers GROUP BY question").fetchall()
    )
    assert answers == {"Q4": 2, "Q5": 2}  # an empty answer is not stored
    report = (us_dir / "report.html").read_text()
    assert HOSTILE not in report and "participant 1: yes, &lt;script&gt;" in report
    assert report.count("<svg") == 3  # one Figure 5-style chart per rating question

    # export, import into a fresh copy of the design: the same analysis
    exported = us_dir.parent / "responses.json"
    assert cli("userstudy", "export", str(us_dir), "--out", str(exported)).returncode == 0
    copy = us_dir.parent / "copy"
    copy.mkdir()
    (copy / "design.json").write_text((us_dir / "design.json").read_text())
    assert cli("userstudy", "import", str(copy), str(exported)).returncode == 0
    again = json.loads(cli("userstudy", "analyze", str(copy), "--format", "json").stdout)
    assert again["summaries"] == result["summaries"] and again["tests"] == result["tests"]
    twice = cli("userstudy", "import", str(copy), str(exported))
    assert twice.returncode == 2 and "already in this study" in twice.stderr


def test_the_server_refuses_bad_requests(us_dir, server):
    def post(path: str, body: bytes, kind: str = "application/json") -> int:
        request = urllib.request.Request(
            server + path, data=body, headers={"Content-Type": kind}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert post("/p/not-a-token/rate", b"{}") == 404
    with urllib.request.urlopen(server + "/") as response:
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
    # a real participant, then ratings out of range, unknown questions, junk
    request = urllib.request.Request(
        server + "/start", data=b"consent=yes", method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with urllib.request.urlopen(request) as response:
        token = response.url.split("/p/")[1].split("/")[0]
    for body in (
        {"task": 1, "position": 1, "question": "Q1", "value": 8},
        {"task": 1, "position": 9, "question": "Q1", "value": 3},
        {"task": 0, "position": 1, "question": "Q1", "value": 3},
        {"task": 1, "position": 1, "question": "Q9", "value": 3},
        "not an object",
    ):
        assert post(f"/p/{token}/rate", json.dumps(body).encode()) == 400
    assert post(f"/p/{token}/rate", b"\xff\xfe") == 400
    ok = {"task": 1, "position": 1, "question": "Q1", "value": 3}
    assert post(f"/p/{token}/rate", json.dumps(ok).encode()) == 204
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server}/p/{token}/task/99")
    assert missing.value.code == 404


def test_holm_and_welch_against_their_definitions():
    pvalues = [0.01, 0.04, 0.03, 0.2]
    # Holm by hand: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1, made monotone
    assert holm(pvalues) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    a, b = [5, 6, 7, 5, 6, 7, 4], [3, 4, 2, 5, 3, 4]
    t, df, p, d = welch(a, b)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se = math.sqrt(va / len(a) + vb / len(b))
    assert t == pytest.approx((ma - mb) / se)
    nu = se**4 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    assert df == pytest.approx(nu)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), nu))
    assert d == pytest.approx((ma - mb) / math.sqrt((va + vb) / 2))
    assert all(math.isnan(x) for x in welch([3], [4, 5]))


@pytest.mark.slow
def test_create_refuses_what_it_cannot_do(us_dir, tmp_path, data_dir):
    # a study directory with answers keeps them: no new design over it
    again = cli(
        "userstudy", "create", str(us_dir.parent / "study"), "--out", str(us_dir),
        "--methods", ",".join(METHODS), "--tasks", "2", "--force", data_dir=data_dir,
    )  # fmt: skip
    assert again.returncode == 2 and "already holds participants' answers" in again.stderr
    for args, message in (
        (["--methods", "reading_all"], "two or more"),
        (["--methods", "nope,reading_all"], "unknown method 'nope'"),
        (["--tasks", "0"], "--tasks"),
        (["--tasks", "50"], "only 4 tasks"),
    ):
        done = cli(
            "userstudy", "create", str(us_dir.parent / "study"), "--out", str(tmp_path / "x"),
            *(["--methods", ",".join(METHODS)] if "--methods" not in args else []), *args,
            data_dir=data_dir,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    missing = cli("userstudy", "serve", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no user study" in missing.stderr


@pytest.mark.slow
def test_create_computes_what_the_study_lacks(tmp_path, data_dir):
    study = tmp_path / "study"
    first = cli(
        "userstudy", "create", str(study), "--out", str(tmp_path / "a"), "--compute",
        "--model", "tiny", "--tasks", "1", "--methods", "reading_first,reading_all",
        data_dir=data_dir,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert (study / "study.sqlite").is_file()  # a new study was run (the tiny model's context
    # holds HumanEval/0 only: the second task's failure is reported, not fatal)
    grown = cli(
        "userstudy", "create", str(study), "--out", str(tmp_path / "b"), "--compute",
        "--tasks", "1", "--methods", "reading_first,saliency_reading", data_dir=data_dir,
    )  # fmt: skip
    assert grown.returncode == 0, grown.stderr
    design = StudyDesign.load(tmp_path / "b")
    assert design.methods == ("reading_first", "saliency_reading")
    assert all(set(t.highlights) == set(design.methods) for t in design.tasks)
