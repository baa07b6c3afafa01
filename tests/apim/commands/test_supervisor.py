"""``apim.management.supervisor``: children are streamed with prefixes and always stopped."""

from __future__ import annotations

import sys
import threading
import time

from apim.management.supervisor import Outcome, ProcessSpec, Supervisor


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


SLEEPER = python("import time; print('up', flush=True); time.sleep(60)")
STUBBORN = python(
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
)


class Lines:
    """A ``write`` callback that can also wait for a line to arrive."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout), self.lines


def test_a_child_that_dies_stops_the_others_and_fails_the_run():
    lines = Lines()
    crash = python("import sys, time; time.sleep(0.5); print('boom'); sys.exit(3)")
    supervisor = Supervisor([ProcessSpec("sleeper", SLEEPER), ProcessSpec("crash", crash)], write=lines)
    outcome = supervisor.run()
    assert outcome == Outcome(failed="crash", returncode=3) and not outcome.ok
    assert all(process.poll() is not None for process in supervisor.processes)
    assert "sleeper | up" in lines.lines and "  crash | boom" in lines.lines


def test_a_stop_request_terminates_children_and_succeeds():
    lines = Lines()
    supervisor = Supervisor([ProcessSpec("a", SLEEPER), ProcessSpec("b", SLEEPER)], write=lines)
    threading.Thread(target=lambda: (lines.wait_for("b | up"), supervisor.request_stop()), daemon=True).start()
    outcome = supervisor.run()
    assert outcome.ok
    assert [process.returncode for process in supervisor.processes] == [-15, -15]  # SIGTERM


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period():
    lines = Lines()
    supervisor = Supervisor([ProcessSpec("stubborn", STUBBORN)], write=lines, stop_grace=0.5)
    threading.Thread(target=lambda: (lines.wait_for("ready"), supervisor.request_stop()), daemon=True).start()
    started = time.monotonic()
    assert supervisor.run().ok
    assert supervisor.processes[0].returncode == -9  # SIGKILL
    assert 0.5 <= time.monotonic() - started < 10
    assert "stubborn did not stop within 0.5 s; killing it." in lines.lines
