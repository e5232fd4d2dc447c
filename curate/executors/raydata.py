"""The Ray executor: Ray Data's ``map_batches`` over a dataset of batch indexes.

Each Ray worker reads its batch from the input folder, runs the stage and writes the batch's files itself
(``curate.batches.run_batch``), returning the shard record; the driver receives the records in input order
(``preserve_order``). Stages with a ``setup`` run in an ``ActorPoolStrategy`` pool (one ``setup()`` per actor, the
actor kept for every batch it gets); the others in a ``TaskPoolStrategy``. Ray retries a task whose worker died, and
a batch written twice writes the same files, so a killed worker loses and duplicates nothing.
"""

from __future__ import annotations

import os
import pickle
from typing import Iterator

import numpy as np

from curate.batches import BatchJob, run_batch
from curate.executors import Executor, ExecutorSpec


class _Actor:
    """One Ray actor: the job's stage, built once; each call runs one batch."""

    def __init__(self, job: BatchJob):
        self.job = job
        self.stage = job.stage

    def __call__(self, batch: dict) -> dict:
        return _results(self.job, self.stage, batch)


def _task(batch: dict, job: BatchJob) -> dict:
    return _results(job, job.stage, batch)


def _results(job: BatchJob, stage, batch: dict) -> dict:
    out = [pickle.dumps(run_batch(job, stage, int(k))) for k in batch["k"]]
    return {"k": batch["k"], "result": np.array(out, dtype=object)}


class RayExecutor(Executor):
    kind = "ray"

    def __init__(self, spec: ExecutorSpec):
        import ray

        self.spec = spec
        self._started = False
        if not ray.is_initialized():
            options = {"address": spec.address} if spec.address else {"num_cpus": spec.num_cpus or os.cpu_count()}
            ray.init(**options, include_dashboard=False, log_to_driver=False, configure_logging=False)
            self._started = True

    def map(self, job: BatchJob, todo: list[int], workers: int | None = None) -> Iterator[dict]:
        import ray.data

        if not todo:
            return
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        workers = min(workers or self.spec.workers, len(todo))
        resources = {"num_cpus": self.spec.cpus_per_worker}
        if self.spec.gpus_per_worker:
            resources["num_gpus"] = self.spec.gpus_per_worker
        ds = ray.data.from_items([{"k": k} for k in todo], override_num_blocks=len(todo))
        if job.loads_model:
            ds = ds.map_batches(_Actor, fn_constructor_args=(job,), batch_size=1,
                                compute=ray.data.ActorPoolStrategy(size=workers), **resources)
        else:
            ds = ds.map_batches(_task, fn_args=(job,), batch_size=1, compute=ray.data.TaskPoolStrategy(size=workers),
                                **resources)
        for row in ds.iter_rows():
            yield pickle.loads(row["result"])

    def close(self) -> None:
        import ray

        if self._started:
            ray.shutdown()
            self._started = False
