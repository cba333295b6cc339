"""config.progress: a bar on a terminal, one summary line when the output is piped."""

import io

from tqdm import tqdm

from config.progress import LineProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_output_gets_one_line_per_step():
    out = io.StringIO()

    total = sum(progress(range(1200), total=1200, desc="rollup", unit="days", file=out))

    assert total == sum(range(1200))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("rollup: 1,200 days in ")
    assert "\r" not in out.getvalue()


def test_piped_updates_count_and_say_what_was_left():
    out = io.StringIO()

    with progress(total=10, desc="simulated sessions", unit="sessions", file=out) as bar:
        bar.update(3)
        bar.update(4)

    assert isinstance(bar, LineProgress)
    assert out.getvalue().startswith("simulated sessions: 7 of 10 sessions in ")


def test_a_terminal_gets_the_tqdm_bar():
    out = Terminal()

    bar = progress(range(3), total=3, desc="days", file=out)
    list(bar)

    assert isinstance(bar, tqdm)
    assert "3/3" in out.getvalue()


def test_show_false_writes_nothing_anywhere():
    for out in (io.StringIO(), Terminal()):
        with progress(total=5, show=False, file=out) as bar:
            bar.update(5)
        assert out.getvalue() == ""
