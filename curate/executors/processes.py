"""The process executor: a spawned pool whose initializer builds the job's stage once per worker, so a stage that
loads a model loads it once per worker, not once per batch. Each worker's math libraries get ``cpus_per_worker``
threads (as Ray does for its workers), so N workers do not each start a thread per core."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Iterator

from curate.batches import BatchJob, run_batch
from curate.executors import Executor, ExecutorSpec

_worker: dict = {}  # in a worker process: the job and its stage, built by _start


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")


def _start(job: BatchJob, threads: int) -> None:
    for name in THREAD_VARIABLES:  # read by torch, numpy and tokenizers when the stage's setup imports them
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _worker["job"], _worker["stage"] = job, job.stage  # an unpickled copy: config only, setup() on first batch


def _run(k: int) -> dict:
    return run_batch(_worker["job"], _worker["stage"], k)


class ProcessExecutor(Executor):
    kind = "processes"

    def __init__(self, spec: ExecutorSpec):
        self.spec = spec

    def map(self, job: BatchJob, todo: list[int], workers: int | None = None) -> Iterator[dict]:
        """Batches in ``workers`` processes, at most twice that many in flight, results in the order of ``todo``."""
        workers = min(workers or self.spec.workers, max(1, len(todo)))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start,
                                 initargs=(job, max(1, int(self.spec.cpus_per_worker)))) as pool:
            window: deque = deque()
            for k in todo:
                window.append(pool.submit(_run, k))
                if len(window) >= 2 * workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
