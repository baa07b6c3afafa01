"""Metrics across gateway worker processes: the shared directory, gauge documents, the exposition.

``manage.py gateway --workers N`` (N > 1) points ``PROMETHEUS_MULTIPROC_DIR``
at a directory it empties before the workers start
(``prepare_directory``). Each worker then imports prometheus_client with the
variable set, so every counter and histogram it increments (the gateway's, the
usage pipeline's, the rate limiter's) is a memory-mapped file there, and a
scrape of ``/__apim/metrics`` on any worker renders them all through
``MultiProcessCollector``: counters and histograms are summed over every
worker that ever ran, dead ones included (their counts happened).

Gauges are different: a worker's target health or buffer depth means nothing
once it is gone, and a target removed from the configuration must disappear.
Each worker writes its gauges as one small JSON document
(``apim_gauges_<pid>_<n>.json``, replaced atomically at each flush); the scrape
merges the documents of live processes (per gauge: sum, min or max) and
deletes those of dead ones, calling ``mark_process_dead`` for them too.

Without the variable (tests, ``--workers 1``, embedded) nothing of this is
used: the process's default registry is rendered, with the gauge documents
kept in memory.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
GAUGE_PREFIX = "apim_gauges_"

GaugeSpecs = Mapping[str, tuple[str, tuple[str, ...], str]]
Samples = list[tuple[str, tuple[str, ...], float]]

_ids = itertools.count(1)
# Single-process mode: the documents of this process's publishers, by publisher.
_local_documents: dict[int, Samples] = {}
# Every gauge this process knows how to merge (``declare_gauges``).
_gauge_specs: dict[str, tuple[str, tuple[str, ...], str]] = {}


def declare_gauges(specs: GaugeSpecs) -> None:
    """Make gauges known to the exposition: name -> (help, label names, merge mode: sum, min or max)."""
    for name, (_help, _labels, mode) in specs.items():
        if mode not in ("sum", "min", "max"):
            raise ValueError(f"gauge {name}: unknown merge mode {mode!r}")
    _gauge_specs.update(specs)


def multiprocess_dir() -> str | None:
    """The shared directory, if this process counts into it.

    Both must hold: the variable is set, and prometheus_client was imported
    with it (the value class is chosen once, at import; a process that
    imported it earlier counts in memory, alone).
    """
    path = os.environ.get(ENV)
    if not path or values.ValueClass is values.MutexValue:
        return None
    return path


def _file_pid(name: str) -> int | None:
    """The pid in ``counter_123.db``, ``gauge_livesum_123.db`` or ``apim_gauges_123_1.json``."""
    if name.startswith(GAUGE_PREFIX) and name.endswith(".json"):
        part = name[len(GAUGE_PREFIX) :].split("_", 1)[0]
    elif name.endswith(".db"):
        part = name[:-3].rsplit("_", 1)[-1]
    else:
        return None
    return int(part) if part.isdigit() else None


def prepare_directory(path: str | os.PathLike[str]) -> Path:
    """Create the directory and remove what earlier runs left (metrics of other pids); returns it.

    Files of this very process stay: it may have imported prometheus_client
    with the variable already set (an operator's own ``PROMETHEUS_MULTIPROC_DIR``).
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    me = os.getpid()
    for entry in directory.iterdir():
        pid = _file_pid(entry.name)
        if pid is not None and pid != me and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    return directory


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a worker that died but was not reaped yet is a zombie: dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def merge_gauges(documents: Iterable[Samples], specs: GaugeSpecs) -> Iterator[GaugeMetricFamily]:
    """One family per declared gauge, each label set merged over the documents by its mode."""
    merged: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in specs}
    for samples in documents:
        for name, labels, value in samples:
            if name not in specs:
                continue
            key = tuple(labels)
            series = merged[name]
            current = series.get(key)
            mode = specs[name][2]
            if current is None:
                series[key] = value
            elif mode == "sum":
                series[key] = current + value
            elif mode == "min":
                series[key] = min(current, value)
            else:
                series[key] = max(current, value)
    for name, (help_text, label_names, _mode) in specs.items():
        family = GaugeMetricFamily(name, help_text, labels=label_names)
        for labels, value in sorted(merged[name].items()):
            family.add_metric(list(labels), value)
        yield family


class _LocalGauges(Collector):
    """Single-process mode: this process's gauge documents, from memory."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not _gauge_specs:
            return iter(())
        return merge_gauges(list(_local_documents.values()), _gauge_specs)


class _FileGauges(Collector):
    """Multi-process mode: the gauge documents of live workers in the directory."""

    def __init__(self, path: str, specs: GaugeSpecs) -> None:
        self.path = Path(path)
        self.specs = specs

    def collect(self) -> Iterator[GaugeMetricFamily]:
        documents: list[Samples] = []
        for entry in sorted(self.path.glob(f"{GAUGE_PREFIX}*.json")):
            pid = _file_pid(entry.name)
            if pid is None:
                continue
            if not _alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                with contextlib.suppress(OSError):
                    mark_process_dead(pid, str(self.path))
                continue
            try:
                documents.append([(n, tuple(labels), float(v)) for n, labels, v in json.loads(entry.read_bytes())])
            except (OSError, ValueError, TypeError):
                continue  # replaced or removed under us: the next scrape reads the new one
        return merge_gauges(documents, self.specs)


REGISTRY.register(_LocalGauges())


class GaugePublisher:
    """Where one worker's gauge samples go: a document in the shared directory, or this process's memory."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self._failing = False

    def _file(self, path: str) -> Path:
        return Path(path) / f"{GAUGE_PREFIX}{os.getpid()}_{self.id}.json"

    def publish(self, samples: Samples) -> None:
        path = multiprocess_dir()
        if path is None:
            _local_documents[self.id] = samples
            return
        target = self._file(path)
        temporary = target.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(samples))
            os.replace(temporary, target)
        except OSError as exc:
            if not self._failing:  # once per outage, not once a second
                logger.warning("gateway gauges could not be written to %s: %s", path, exc)
            self._failing = True
            return
        self._failing = False

    def retire(self) -> None:
        """This worker is ending: its gauges leave the exposition now, not at the next scrape."""
        _local_documents.pop(self.id, None)
        path = multiprocess_dir()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._file(path).unlink()
            with contextlib.suppress(OSError):
                mark_process_dead(os.getpid(), path)


def render() -> bytes:
    """The Prometheus text exposition: every worker's metrics with a shared directory, else this process's."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    registry.register(_FileGauges(path, _gauge_specs))
    return generate_latest(registry)
