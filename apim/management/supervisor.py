"""A deliberately small process supervisor for ``run_all`` (and so ``make run``).

Each child runs in its own session (process group), so a Ctrl-C in the
terminal reaches only the supervisor, which then stops the children itself,
in order and completely: SIGTERM to each child's whole group (uvicorn or
Celery may have forked workers), up to ``stop_grace`` seconds for them to
exit, then SIGKILL. If a child exits on its own, the others are stopped too
and the run counts as failed, so a broken install never looks half-alive.

Each child's stdout and stderr are merged and streamed line by line with the
child's name in front, through one lock so lines never interleave mid-line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process: a name for its output prefix, its argv, and URLs worth printing."""

    name: str
    argv: tuple[str, ...]
    urls: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``failed`` names the child that exited on its own, if one did."""

    failed: str | None = None
    returncode: int | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


@dataclass
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    pump: threading.Thread


class Supervisor:
    """Start ``specs``, wait for a stop request or a child's death, then stop them all.

    ``write`` receives one finished line at a time (no trailing newline).
    ``request_stop`` may be called from any thread; SIGINT and SIGTERM call
    it when ``run`` is on the main thread.
    """

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        write: Callable[[str], None],
        stop_grace: float = STOP_GRACE_SECONDS,
        poll_interval: float = 0.2,
        env: dict[str, str] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.stop_grace = stop_grace
        self.poll_interval = poll_interval
        self.env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        self._write = write
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._children: list[_Child] = []

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The children started so far (for callers that check they are all gone)."""
        return [child.process for child in self._children]

    def request_stop(self, *_: Any) -> None:
        self._stopping.set()

    def emit(self, line: str) -> None:
        with self._lock:
            self._write(line)

    def run(self) -> Outcome:
        restore = self._install_signal_handlers()
        try:
            self._start_all()
            return self._watch()
        finally:
            self._stop_all()
            restore()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _start_all(self) -> None:
        for spec in self.specs:
            process = subprocess.Popen(  # noqa: S603 - argv comes from our own process table
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
            assert process.stdout is not None
            pump = threading.Thread(target=self._pump, args=(spec.name, process.stdout), daemon=True)
            pump.start()
            self._children.append(_Child(spec, process, pump))

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        width = max(len(spec.name) for spec in self.specs)
        for raw in iter(stream.readline, b""):
            self.emit(f"{name:>{width}} | {raw.decode('utf-8', 'replace').rstrip()}")
        stream.close()

    def _watch(self) -> Outcome:
        while not self._stopping.is_set():
            for child in self._children:
                returncode = child.process.poll()
                if returncode is not None:
                    return Outcome(failed=child.spec.name, returncode=returncode)
            self._stopping.wait(self.poll_interval)
        return Outcome()

    def _stop_all(self) -> None:
        alive = [child for child in self._children if child.process.poll() is None]
        for child in alive:
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for child in alive:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.emit(f"{child.spec.name} did not stop within {self.stop_grace:g} s; killing it.")
                _signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
        for child in self._children:
            # Leftovers of a group whose leader already exited (e.g. orphaned workers).
            _signal_group(child.process.pid, signal.SIGKILL)
            child.pump.join(timeout=2)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
