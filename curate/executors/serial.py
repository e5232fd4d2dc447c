"""The serial executor: every batch in this process, in order, with the stage instance the step holds."""

from __future__ import annotations

from typing import Iterator

from curate.batches import BatchJob, run_batch
from curate.executors import Executor


class SerialExecutor(Executor):
    kind = "serial"

    def map(self, job: BatchJob, todo: list[int], workers: int | None = None) -> Iterator[dict]:
        for k in todo:
            yield run_batch(job, job.stage, k)
