"""Progress in a log: one line per task that moves, none for detail bars."""

from codefocus.progress import LogProgress


def test_detail_bars_get_no_lines_in_a_log(capsys):
    progress = LogProgress(interval=0)
    methods = [progress.add_task(f"  method{i}", total=2, log=False) for i in range(3)]
    model = progress.add_task("tiny", total=2)
    for _ in range(2):
        for bar in methods:
            progress.advance(bar)
        progress.advance(model)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "[codefocus] tiny: 1/2 (50%)",
        "[codefocus] tiny: 2/2 (100%)",
    ]


def test_a_line_at_most_every_interval_and_one_at_the_end(capsys):
    progress = LogProgress(interval=3600)
    bar = progress.add_task("training", total=3)
    for _ in range(3):
        progress.advance(bar)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "[codefocus] training: 1/3 (33%)",
        "[codefocus] training: 3/3 (100%)",
    ]
