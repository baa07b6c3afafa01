"""The local spill file: where a gateway's usage records wait while its sink is down.

Layout: ``<dir>/<token>.spill`` per recorder (one writer per file, so several
gateway workers sharing the data folder never interleave appends). Each write
appends one msgpack frame (a whole batch) and fsyncs it.

Replay claims a file by renaming it to ``<name>.<claimer>.replay`` while
holding an exclusive ``flock`` on it, then keeps the lock until the records
are handed on and the file is removed. Consequences:

* a writer that opened the file just before the rename notices the inode
  changed once it gets the lock and reopens a fresh file, so no append lands
  in a file that is being replayed;
* a ``.replay`` file whose claimer died is unlocked and is claimed again (at
  the next start or recovery of any worker); records sent twice are harmless,
  the ingest is idempotent on record id;
* a truncated last frame (a crash mid-write) loses only that frame, counted.

All functions here block (file I/O): the recorder runs them in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import msgpack

from analytics import metrics
from analytics.records import BatchFormatError, Record, batch_from_document, pack_batch

logger = logging.getLogger(__name__)

_seq = itertools.count(1)


class SpillFull(Exception):
    """The spill directory already holds its configured maximum."""


@dataclass
class SpillStore:
    directory: Path
    token: str
    max_bytes: int
    _written: int = field(default=0, init=False)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.token}.spill"

    def size(self) -> int:
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.directory):
                if entry.name.endswith((".spill", ".replay")):
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat().st_size
        return total

    def append(self, records: Sequence[Record]) -> None:
        """Append one batch durably; raise ``SpillFull`` or ``OSError`` if it cannot be kept."""
        frame = pack_batch(records)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.size() + len(frame) > self.max_bytes:
            raise SpillFull(f"spill directory over {self.max_bytes} bytes")
        while True:
            with open(self.path, "ab") as handle:
                if not _lock_current(handle, self.path):
                    continue  # claimed for replay between open and lock: use a fresh file
                try:
                    handle.write(frame)
                    handle.flush()
                    os.fsync(handle.fileno())
                    return
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def claim(self) -> list[Claim]:
        """Take every spill file nobody is writing or replaying (this worker's own included)."""
        claims = []
        with contextlib.suppress(FileNotFoundError):
            names = sorted(os.listdir(self.directory))
            for name in names:
                if name.endswith(".spill") or name.endswith(".replay"):
                    claim = self._claim_one(self.directory / name)
                    if claim is not None:
                        claims.append(claim)
        return claims

    def _claim_one(self, path: Path) -> Claim | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the lock lives as long as the claim
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        if not _same_file(handle, path):
            handle.close()
            return None
        if path.name.endswith(".spill"):
            target = path.with_name(f"{path.name}.{self.token}-{next(_seq)}.replay")
            os.rename(path, target)
            path = target
        return Claim(path=path, handle=handle)


@dataclass
class Claim:
    """A spill file this process holds locked until it is done with it."""

    path: Path
    handle: BinaryIO

    def batches(self) -> Iterator[list[Record]]:
        """Each intact batch in order; a damaged tail is logged and counted, not raised."""
        self.handle.seek(0)
        unpacker = msgpack.Unpacker(self.handle, raw=False, strict_map_key=False)
        size = os.fstat(self.handle.fileno()).st_size
        try:
            for document in unpacker:
                yield batch_from_document(document)
        except (BatchFormatError, ValueError, msgpack.UnpackException) as exc:
            logger.error("spill file %s is damaged after byte %d: %s", self.path.name, unpacker.tell(), exc)
            metrics.RECORDS_DROPPED.labels(reason="spill_corrupt").inc()
            return
        if unpacker.tell() < size:
            logger.error("spill file %s ends in a partial batch (%d bytes)", self.path.name, size - unpacker.tell())
            metrics.RECORDS_DROPPED.labels(reason="spill_corrupt").inc()

    def done(self) -> None:
        """Everything was handed on: remove the file, then release it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.release()

    def release(self) -> None:
        """Give up (the sink failed): the file stays for a later replay."""
        with contextlib.suppress(OSError):
            self.handle.close()


def _lock_current(handle: BinaryIO, path: Path) -> bool:
    """Lock ``handle`` if it is still the file at ``path``; False once it was renamed away.

    Never waits on a replayer: a replay holds its lock for as long as the sink
    takes, but it renames the file first, which this notices.
    """
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _same_file(handle, path):
                return False
            time.sleep(0.005)
            continue
        if _same_file(handle, path):
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _same_file(handle: BinaryIO, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
