"""What a running job shows (nst.progress.Bars): plain lines where stderr is a log or a pipe, an early one and the
last at a scale's end; a live bar on a terminal."""
import fcntl
import os
import pty
import re
import struct
import sys
import termios

from nst import progress
from nst.engine import Progress
from nst.progress import Bars
from tests.conftest import run_app


def test_a_redirected_job_logs_plain_lines_an_early_one_and_its_last(tmp_path, monkeypatch):
    # in this process stderr is captured (not a terminal), as in `cmd 2> log`; the first line at the first iteration
    # (FIRST_SECONDS 0), so that it does not depend on how fast this machine is
    monkeypatch.setattr(progress, "FIRST_SECONDS", 0.0)
    out = tmp_path / "job"
    ran = run_app("experiments.transfer", "size=32", "steps=20", "progress=true", f"hydra.run.dir={out}")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "\r" not in ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.startswith("job 32px: iteration ")]
    assert len(lines) == 2 and all(re.fullmatch(r"job 32px: iteration \d+/20, loss \S+, \S+ s/iteration", line)
                                   for line in lines), lines  # one early, one at its end; none between (10 s)
    assert re.match(r"job 32px: iteration [01]/20,", lines[0]) and lines[1].startswith("job 32px: iteration 20/20,")
    assert ran.stdout.strip().splitlines()[-1].startswith(f"result: {out / 'result.png'}")


def test_a_terminal_shows_a_live_bar(monkeypatch):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # tqdm draws nothing on 0 rows
    with open(slave, "w") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        bars = Bars("job", True)
        for i in range(1, 4):
            bars(32, 3, Progress(i, i, 0.01 * i, {"total_loss": 10.0 / i}))
        bars.close()
        tty.flush()
        shown = os.read(master, 65536).decode()
    os.close(master)
    assert "\r" in shown and "job 32px" in shown and "3/3" in shown and "iteration" not in shown
