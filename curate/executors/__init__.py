"""Executors: where a row stage's batches run. A step owns what is written and when it is done; an executor owns only
which process or node runs ``curate.batches.run_batch`` for each batch, so every executor writes the same files.

- ``serial``: in this process, one batch after another.
- ``processes``: a pool of spawned processes, each building the stage once (one model per worker), a bounded window
  of batches in flight, results handed back in input order.
- ``ray``: Ray Data over the batch indexes: ``map_batches`` with a task pool for stages without ``setup`` and an
  actor pool (one ``setup()`` per actor, CPUs and GPUs per actor configurable) for stages that load a model. Joins
  the cluster at ``address``, or starts a local one. Workers read and write the run folder, so on a multi-node
  cluster it must lie on storage every node mounts.

Pipeline key (or ``curate run --executor KIND --workers N``)::

    executor: {kind: ray, workers: 4, cpus_per_worker: 1, gpus_per_worker: 0.5, address: auto}

A stage entry's ``workers:`` overrides ``workers`` for that stage.
"""

from __future__ import annotations

from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.batches import BatchJob


class ExecutorSpec(BaseModel):
    """Which executor runs row stages, and how wide."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["serial", "processes", "ray"] = "serial"
    workers: int = Field(2, ge=1, description="processes or Ray workers per stage (a stage's workers: overrides)")
    address: str | None = Field(None, description="ray: the cluster to join ('auto', 'ray://host:10001'); "
                                                  "default: start a local one")
    num_cpus: int | None = Field(None, ge=1, description="ray: CPUs of the local cluster it starts")
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)


class Executor:
    """Runs ``run_batch(job, stage, k)`` for each ``k`` in ``todo``; yields the results in the order of ``todo``."""

    kind: str

    def map(self, job: BatchJob, todo: list[int], workers: int | None = None) -> Iterator[dict]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers and clusters this executor started."""


def make_executor(spec: ExecutorSpec | None = None) -> Executor:
    """The executor ``spec`` describes (serial when None); imports Ray only for ``kind: ray``."""
    spec = spec or ExecutorSpec()
    if spec.kind == "processes":
        from curate.executors.processes import ProcessExecutor

        return ProcessExecutor(spec)
    if spec.kind == "ray":
        from curate.executors.raydata import RayExecutor

        return RayExecutor(spec)
    from curate.executors.serial import SerialExecutor

    return SerialExecutor()
