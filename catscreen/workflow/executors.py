"""Where the Flow's Jobs run: in this process (jobflow run_locally) or on a Dask cluster.

Both call `on_done(job, rows, error)` in the driver process as each Job finishes, so the
driver stays the single writer of results.parquet and a killed run loses only the Jobs that
were in flight and the rows not yet written (`ResultTable`). The relaxation Jobs are
independent, so running them one at a time or in any order on a cluster gives the same Flow
result.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager, suppress
from typing import Any

from jobflow import Flow, Job, JobStore
from jobflow.managers.local import run_locally
from maggma.stores import MemoryStore
from monty.json import MontyDecoder

from catscreen.errors import CatscreenError, described, first_line
from catscreen.workflow.relax import Row

OnDone = Callable[[Job, list[Row] | None, str | None], None]
EXECUTORS: tuple[str, ...] = ("local", "dask")

# Threads per worker process: BLAS/torch in every Dask worker would otherwise each start one
# thread per core and oversubscribe the machine.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def all_jobs(flow: Flow) -> list[Job]:
    """Every Job of a Flow, also inside nested Flows (a campaign may combine several)."""
    with warnings.catch_warnings():
        # "Some jobs are not connected": intended, the relaxation Jobs are independent.
        warnings.simplefilter("ignore", UserWarning)
        return [j for j, _ in flow.iterflow()]


class _NotifyingJobStore(JobStore):
    """An in-memory JobStore that also hands each stored Job output to a callback.

    jobflow's run_locally only returns when the whole Flow is done; hooking the store is how
    the driver learns, batch by batch, that a Job finished.
    """

    def __init__(self, on_output: Callable[[str, Any], None]) -> None:
        super().__init__(MemoryStore())
        self._on_output = on_output

    def update(self, docs: Any, key: Any = None, save: Any = None) -> None:
        super().update(docs, key=key, save=save)
        for doc in docs if isinstance(docs, list) else [docs]:
            d = doc if isinstance(doc, dict) else doc.model_dump()
            self._on_output(d["uuid"], d["output"])


class _FailureLog(logging.Handler):
    """Keeps the last line of each failed Job's traceback, which run_locally only logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.errors: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " failed with exception:" in message:
            name = message.split(" failed with exception:")[0]
            last = message.strip().splitlines()[-1]  # "catscreen.errors.CatscreenError: why"
            kind, sep, why = last.partition(": ")
            self.errors[name] = kind.rsplit(".", 1)[-1] + sep + why  # as described() on Dask


class _DriverError(BaseException):
    """Carries an error of `on_done` (e.g. the disk is full) through run_locally, which
    catches every `Exception` of a Job and only logs it; finished rows must not be lost."""


def run_local(flow: Flow, on_done: OnDone) -> None:
    """The Flow through jobflow's run_locally with an in-memory JobStore, in this process.

    A Job that raises is reported with its error and the others still run; an error of
    `on_done` itself (writing the results) stops the run and is raised, as on Dask.
    """
    jobs = {j.uuid: j for j in all_jobs(flow)}
    reported: set[str] = set()

    def stored(uuid: str, output: Any) -> None:
        reported.add(uuid)
        try:
            on_done(jobs[uuid], output, None)
        except Exception as exc:
            raise _DriverError() from exc

    logger = logging.getLogger("jobflow.managers.local")
    failures = _FailureLog()
    level = logger.level
    logger.addHandler(failures)
    logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            # jobflow warns that independent jobs have no fixed order (intended here) and
            # about its own use of a deprecated monty helper; neither concerns the user.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            run_locally(flow, store=_NotifyingJobStore(stored), log=False)
    except _DriverError as err:
        raise err.__cause__ from None  # type: ignore[misc]
    finally:
        logger.removeHandler(failures)
        logger.setLevel(level)
    for uuid, j in jobs.items():
        if uuid not in reported:
            on_done(j, None, failures.errors.get(j.name, "the job did not run"))


class BatchError(Exception):
    """A batch's failure as text: Dask pickles a worker's exception with its traceback, and
    one it cannot (a RecursionError's thousand frames) left the future pending for ever, one
    of a class the driver cannot import came back as a pickled blob in the reason column."""


def run_job_json(job_json: str) -> list[Row]:
    """Run one serialised Job on a Dask worker with its own in-memory JobStore.

    The Job travels as monty JSON, the same form jobflow-remote and FireWorks use; the model
    it names is loaded once per worker process (catscreen.workflow.jobs.cached_model).
    """
    try:
        j: Job = MontyDecoder().decode(job_json)
        store = JobStore(MemoryStore())
        store.connect()
        return j.run(store).output
    except Exception as exc:
        error = described(exc)
    raise BatchError(error)  # outside the handler: no chained exception travels with it


@contextmanager
def _workers_ignore_interrupt() -> Iterator[None]:
    """Start processes with Ctrl-C blocked (a child keeps the signal mask, across exec): the
    driver alone stops and closes the cluster, instead of every worker printing its own
    KeyboardInterrupt traceback (114 lines for two workers, measured). Noted, not ignored: a
    Ctrl-C meanwhile stops the driver once the cluster has started and can be closed (ignored,
    it was lost and the run went on; raised mid-start, Dask's exit hook failed closing
    workers still starting). SIGTERM, which relax turns into a Ctrl-C, likewise."""
    hit: list[int] = []
    stops = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {}
    try:  # the driver's other threads may take the signal: it is noted, not raised mid-start
        for stop in stops:
            previous[stop] = signal.signal(stop, lambda signum, _: hit.append(signum))
    except ValueError:  # not the main thread: Python delivers no signal here
        pass
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(stops))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one pending now reaches the note
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    for stop in dict.fromkeys(hit):  # now to its own handler (a shell's `&` ignores Ctrl-C)
        signal.raise_signal(stop)


SCHEDULER_TIMEOUT = 30.0  # s: an address must answer as a Dask scheduler within this
CLOSE_TIMEOUT = 10.0  # s: closing waits no longer for a scheduler that stopped answering


async def _identity(address: str, timeout: float) -> object:
    from distributed.comm import connect
    from distributed.security import Security

    tls = Security().get_connection_args("client")  # the Dask config's, as Client uses them
    comm = await asyncio.wait_for(connect(address, timeout=timeout, **tls), timeout)
    try:
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout)
        return await asyncio.wait_for(comm.read(), timeout)
    finally:
        comm.abort()


def _refused(address: str, timeout: float) -> None:
    """Fail at once where nothing listens: Dask's connect retries a refused port until its
    timeout and then said "Timed out" (48 s in all); a port beyond 65535 waited as long."""
    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
    except ValueError:
        return  # malformed: Dask's own check says how
    if scheme != "tcp":
        return
    if not 0 < int(port) < 65536:
        raise CatscreenError(f"cannot reach the Dask scheduler {address}: no port {port}")
    try:
        socket.create_connection((host, int(port)), timeout=min(timeout, 5.0)).close()
    except ConnectionRefusedError as exc:
        raise CatscreenError(
            f"cannot reach the Dask scheduler {address}: nothing listens there (refused)"
        ) from exc
    except socket.gaierror as exc:  # else 30 s, then "no answer" or "Timed out"
        raise CatscreenError(
            f"cannot reach the Dask scheduler {address}: no host {host} ({exc.strerror})"
        ) from exc
    except OSError:
        return  # no route, no answer yet: the protocol check says so within its deadline


def check_scheduler(address: str, timeout: float = SCHEDULER_TIMEOUT) -> None:
    """Ask `address` who it is, with a deadline on the whole exchange: Client() waited forever
    on a port that accepts connections but speaks another protocol (the dashboard's 8787)."""
    try:
        asyncio.get_running_loop()
        return  # inside a running event loop (a notebook): leave it to Client
    except RuntimeError:
        pass
    _refused(address, timeout)
    hint = "(a dashboard? a scheduler listens on 8786 by default)"
    try:
        reply = asyncio.run(_identity(address, timeout))
    except TimeoutError as exc:  # nothing there, or something that never answers the protocol
        raise CatscreenError(
            f"cannot reach the Dask scheduler {address}: no answer within {timeout:.0f} s {hint}"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:  # refused, malformed, closed on us
        raise CatscreenError(
            f"cannot reach the Dask scheduler {address}: {first_line(exc)}"
        ) from exc
    except Exception as exc:  # another protocol's bytes read as a frame size (MemoryError)
        raise CatscreenError(f"{address} answers, but not as a Dask scheduler {hint}") from exc
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise CatscreenError(f"{address} answers, but not as a Dask scheduler {hint}")


def run_dask(flow: Flow, on_done: OnDone, scheduler: str | None = None, workers: int = 2) -> None:
    """All Jobs on a Dask cluster: an existing scheduler, or a LocalCluster of `workers` processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise CatscreenError(
            "--executor dask needs dask.distributed: pip install 'catscreen[dask]'"
        ) from exc

    cluster = None
    try:
        if scheduler:
            check_scheduler(scheduler)  # a scheduler without workers: _as_completed says so
            client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT:.0f}s")
        else:
            with _workers_ignore_interrupt():
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",  # None still took :8787, warning if taken
                    # a failed batch is recorded with its reason; workers' tracebacks are noise
                    silence_logs=logging.CRITICAL,
                    env=_WORKER_ENV,
                )
            client = Client(cluster)
    except KeyboardInterrupt:  # during the cluster's start: it goes too
        if cluster is not None:
            cluster.close()
        raise
    # unreachable; a malformed address; a nanny that got a terminal's signal while starting
    # (RuntimeError "Nanny failed to start", with 100 lines of traceback)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        if cluster is not None:
            cluster.close()
        what = f"reach the Dask scheduler {scheduler}" if scheduler else "start a Dask LocalCluster"
        raise CatscreenError(f"cannot {what}: {first_line(exc)}") from exc
    client_log = logging.getLogger("distributed.client")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # a lost scheduler is one CatscreenError, not 40 lines
    where = f"the Dask scheduler {scheduler}" if scheduler else "the Dask cluster"
    try:
        _check_workers(client)
        jobs_by_future = {
            client.submit(
                eval, RUN_BATCH, {"job": j.to_json()}, key=f"catscreen-{j.uuid}", pure=False
            ): j
            for j in all_jobs(flow)
        }
        for fut in _as_completed(client, list(jobs_by_future), where, own=cluster is not None):
            j = jobs_by_future.pop(fut)
            try:
                rows = fut.result()
            except CancelledError as exc:  # the scheduler went away: every batch would
                raise CatscreenError(
                    f"lost {where} ({first_line(exc)}); finished rows are kept: rerun to go on"
                ) from exc
            except BatchError as exc:
                on_done(j, None, str(exc))
                continue
            except Exception as exc:
                if isinstance(exc, ImportError) and "catscreen" in str(exc):  # every batch would
                    raise CatscreenError(
                        f"a Dask worker cannot import catscreen ({described(exc)}): "
                        f"{WORKER_FIX} (finished rows are kept)"
                    ) from exc
                on_done(j, None, batch_failure(exc))
                continue
            finally:  # a result the cluster keeps is recomputed when its worker is lost
                fut.release()
            on_done(j, rows, None)
    finally:  # logs the lost connection again while closing; a silent scheduler's timeout
        with suppress(Exception):  # must not replace the error that says so
            client.close(timeout=CLOSE_TIMEOUT)
        if cluster is not None:
            cluster.close()
        client_log.setLevel(level)


# What a worker must import to run a batch, and the version it then has; a builtin (eval)
# travels by name, so a worker without catscreen can still answer
WORKER_IMPORT = "__import__('catscreen.workflow.executors').__version__"
# A batch travels the same way, as eval and text: a worker without catscreen (one that joined
# after the check) answers with its ImportError; unpacking a catscreen function killed it, and
# its nanny restarted it to take the next batch until Dask gave up on them (KilledWorker)
WORKER_FIX = "start the workers in the environment catscreen runs in"
RUN_BATCH = (
    "__import__('catscreen.workflow.executors', fromlist=['run_job_json']).run_job_json(job)"
)


def _check_workers(client: Any) -> None:
    """Workers that cannot run a batch, named before any: without catscreen, or with another
    version (its rows would be refused at the end). Workers that join later meet RUN_BATCH."""
    from catscreen import __version__ as mine

    theirs = client.run(eval, WORKER_IMPORT, on_error="return")
    for worker, version in sorted(theirs.items()):
        if isinstance(version, OSError | TimeoutError):  # gone while asked
            continue
        if isinstance(version, BaseException):  # no catscreen there, or a broken one
            verb = "import" if isinstance(version, ImportError) else "run"
            raise CatscreenError(
                f"Dask worker {worker} cannot {verb} catscreen ({described(version)}): {WORKER_FIX}"
            )
        if version != mine:
            raise CatscreenError(
                f"Dask worker {worker} has catscreen {version}, this one {mine}: install the "
                "same version on the workers"
            )


def batch_failure(exc: Exception) -> str:
    """A failed batch's reason. Dask's KilledWorker names the task and the last worker, not
    why they died; a memory limit is the usual cause."""
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return (
            "KilledWorker: every worker that ran this batch died (memory over a worker's limit? "
            "give them more, or use a smaller --batch-size; the workers' logs say why)"
        )
    return described(exc)


WORKER_WATCH = 5.0  # s between looks at the cluster while no batch finishes
OWN_WORKERS_GONE = 60.0  # s without a worker after which catscreen's own cluster is given up
SCHEDULER_SILENT = 60.0  # s a scheduler may take to say which workers it has


def _as_completed(client: Any, futures: list[Any], where: str, own: bool = False) -> Iterator[Any]:
    """Each future as it finishes, saying so once when no worker can run a batch: the cluster
    lost them all (the run waited without a word until one joined), or all are paused for
    memory (a paused worker still counted, and the run hung silent). catscreen's own
    LocalCluster (`own`) whose workers were killed with their nannies gets none back: after
    OWN_WORKERS_GONE it is an error (a run waited 71 minutes); another scheduler's may join."""
    from distributed import as_completed

    pending = as_completed(futures)
    said: set[str] = set()  # each note once: a nanny restarting its worker flips the state
    looked = time.monotonic() - WORKER_WATCH  # the first look at once
    none_since: float | None = None
    while not pending.is_empty():
        if pending.has_ready():
            yield from pending.next_batch(block=False)
            continue
        time.sleep(0.2)
        if time.monotonic() - looked < WORKER_WATCH:
            continue
        looked = time.monotonic()
        try:  # with a deadline: a stopped scheduler (SIGSTOP, a suspended host) never answers
            info = client.sync(
                client.scheduler.identity, n_workers=-1, callback_timeout=SCHEDULER_SILENT
            )
            workers = info["workers"].values()
        except TimeoutError as exc:  # its connection stays open, so no future is cancelled
            raise CatscreenError(
                f"{where} has not answered for {SCHEDULER_SILENT:.0f} s (stopped, or cut off?); "
                "finished rows are kept: rerun to go on"
            ) from exc
        except Exception:  # the scheduler is going: its futures say so, as cancelled
            continue
        state = (
            "none"
            if not workers
            else "paused"
            if all(w.get("status") == "paused" for w in workers)
            else ""
        )
        none_since = (none_since or looked) if state == "none" else None
        if own and none_since is not None and looked - none_since >= OWN_WORKERS_GONE:
            raise CatscreenError(
                f"{where} lost every worker for {OWN_WORKERS_GONE:.0f} s (killed with their "
                "nannies?); finished rows are kept: rerun to go on"
            )
        if state and state not in said:
            what = (
                "has no workers; waiting for one"
                if state == "none"
                else "has only paused workers (memory over their pause threshold: give them a "
                "larger --memory-limit, or use a smaller --batch-size); waiting"
            )
            print(f"note: {where} {what} (finished rows are kept; Ctrl-C stops)", file=sys.stderr)
            said.add(state)
