"""results.parquet: the single-writer table that makes relax resumable.

The driver holds an exclusive flock on `<out>.lock` for the whole run (a second run on the
same output is refused; the kernel drops the lock when a process dies, even by SIGKILL, so a
stale lock file never blocks; a run that ends removes it) and rewrites the parquet atomically
after each finished batch, so the file on disk is always a complete, readable table.
"""

from __future__ import annotations

import fcntl
import glob
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from catscreen.errors import CatscreenError, first_line
from catscreen.io import read_parquet, read_parquet_metadata, write_parquet
from catscreen.schema import MANIFEST_COLUMNS, RESULT_COLUMNS
from catscreen.workflow.relax import Row

# What makes a row "the same work": the configuration under one model and context.
KEY_COLUMNS: tuple[str, ...] = ("config_id", "model", "model_version", "spin", "fidelity")
RESULT_TABLE_COLUMNS: tuple[str, ...] = tuple(
    c for c in MANIFEST_COLUMNS if c != "structure_index"
) + tuple(RESULT_COLUMNS)

Key = tuple[str, ...]


def row_key(row: dict[str, Any]) -> Key:
    return tuple(str(row[c]) for c in KEY_COLUMNS)


def followed(out: Path) -> Path:
    """Where an output path writes: a link's target (written and locked there, the link kept)."""
    return out.resolve() if out.is_symlink() else out


def _lock_soon(fd: int, tries: int = 5, wait: float = 0.02) -> None:
    """An exclusive lock, tried a few times: `OutputLock.holder`'s brief shared lock (rank
    asking) must not refuse a run that starts at that moment."""
    for k in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if k == tries - 1:
                raise
            time.sleep(wait)


class OutputLock:
    """An exclusive, non-blocking flock on `<out>.lock` (or `lock`), held while the run writes
    `out`; `by` names that run in the refusal."""

    def __init__(self, out: Path, by: str = "catscreen relax", lock: Path | None = None) -> None:
        self.out = out
        self.by = by
        self.path = lock or out.with_name(out.name + ".lock")
        self._fd: int | None = None

    @staticmethod
    def holder(out: Path) -> str | None:
        """The pid of a run writing `out` now (None: no run holds its lock)."""
        out = followed(out)  # where relax locks it
        path = out.with_name(out.name + ".lock")
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)  # closing releases a lock taken here
        return None

    def __enter__(self) -> OutputLock:
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # 0o666 less the umask: a group's shared folder lets its members take it
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise CatscreenError(f"cannot write {self.out}: {first_line(exc)}") from exc
            try:
                _lock_soon(fd)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise CatscreenError(
                    f"{self.out} is being written by another {self.by} (pid {holder}); "
                    "wait for it to finish or choose another --out"
                ) from None
            if self._is_current(fd):
                break
            # the file was removed (a finishing run) between our open and our lock: a lock
            # on it excludes nobody who opens the path now
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        # a run killed while it wrote `out` left its temporary copy (atomic_path's); with the
        # lock held no writer of `out` is alive, so they are leftovers (4 MB each for 2000 rows)
        for stale in self.out.parent.glob(f".{glob.escape(self.out.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        return self

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: see _is_current
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


BATCH_FAILED = "batch failed: "  # the reason of every row of a batch whose job raised


def batch_failed(row: Row) -> bool:
    return row["status"] == "failed" and str(row.get("reason", "")).startswith(BATCH_FAILED)


MAX_RUNS = 100  # run records kept in a table's metadata: a resumed-for-ever run stays small
# at most this share of a run goes to rewriting the table: a rewrite after every batch cost
# 0.43 s at 10k rows (quadratic in all: 31 s of 194 s at 6.3k placements, batch 32)
WRITE_SHARE = 0.1


class ResultTable:
    """The rows already in `out` plus the ones this run adds; rewritten whole after an add
    once the rows since the last write took 1/WRITE_SHARE - 1 times that write's own time, and
    by `flush` (a kill loses at most those rows, besides the batch in flight)."""

    def __init__(self, out: Path, metadata: dict[str, Any], run: dict[str, Any]) -> None:
        """`metadata` describes this run's settings; `run` (versions, device, time) is added
        to the `runs` the table keeps, one per run that wrote it (the last MAX_RUNS): the
        settings of the last one alone did not say how rows of earlier runs were made."""
        self.out = out
        self.metadata = {**metadata, "runs": [run]}
        self.rows: dict[Key, Row] = {}
        # rows are written in this order (the input's), not as batches finish: a Dask run and
        # a resumed one gave the same rows in another order; rows of other inputs go first
        self.order: dict[Key, int] = {}
        self.stored: dict[str, Any] = {}  # the metadata the table had (its rows' settings)
        self.unwritten = 0  # rows added since the last write
        self.written_at = -float("inf")  # time.monotonic() after the last write
        self.write_seconds = 0.0  # how long that write took
        if out.exists():
            # the stage first: enumerate's manifest given as --out was "lacks model, ..."
            meta = read_parquet_metadata(out) if out.is_file() else {}  # a folder: read_parquet
            self.stored = meta
            if meta.get("stage", "relax") != "relax" or "structures" in meta:
                raise CatscreenError(
                    f"{out} is not a catscreen relax results table (left unchanged); give "
                    "another --out"
                )
            self.metadata["runs"] = [*meta.get("runs", []), run][-MAX_RUNS:]
            old = read_parquet(out, required=KEY_COLUMNS + ("status",))
            for row in old.to_dict("records"):
                self.rows[row_key(row)] = row

    def finished(self, retry_failed: bool = False) -> set[Key]:
        """Keys whose row is final; with retry_failed, failed rows are run again. Rows of a
        batch that failed as a whole (out of memory, a lost worker) are never final: that
        was the machine, not the structure, and the next run retries them."""
        return {
            k
            for k, r in self.rows.items()
            if not (r["status"] == "failed" and (retry_failed or batch_failed(r)))
        }

    def add(self, rows: Iterable[Row]) -> None:
        """Record finished rows (replacing rows with the same key); rewrite atomically when
        it is time to (small tables after every add)."""
        for row in rows:
            self.rows[row_key(row)] = row
            self.unwritten += 1
        if time.monotonic() - self.written_at >= self.write_seconds * (1 / WRITE_SHARE - 1):
            self.write()

    def flush(self) -> None:
        """Write the rows added since the last write."""
        if self.unwritten:
            self.write()

    def frame(self) -> pd.DataFrame:
        keys = sorted(self.rows, key=lambda k: self.order.get(k, -1))  # stable
        df = pd.DataFrame([self.rows[k] for k in keys])
        first = [c for c in RESULT_TABLE_COLUMNS if c in df.columns]
        return df[first + [c for c in df.columns if c not in first]]

    def write(self) -> None:
        start = time.monotonic()
        write_parquet(self.frame(), self.out, metadata={"stage": "relax", **self.metadata})
        self.written_at = time.monotonic()
        self.write_seconds = self.written_at - start
        self.unwritten = 0
