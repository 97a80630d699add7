"""Multi-process start-up: ``jax.distributed.initialize`` when (and only when) launched as several processes."""

from __future__ import annotations

import os

import jax
from absl import logging


def _multi_process_env() -> bool:
    if os.environ.get("PTX_DISTRIBUTED") == "1":  # set by launch/tpu_pod.sh: let jax find the other workers
        return True
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return True
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return len([h for h in hosts.split(",") if h]) > 1


def maybe_initialize(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Join the job's other processes; explicit arguments win, else the cluster's environment is auto-detected
    by jax (TPU pods, SLURM, Open MPI). A single plain process does nothing. Returns whether it initialised."""
    explicit = coordinator_address or (num_processes or 1) > 1
    if not explicit and not _multi_process_env():
        return False
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logging.info(
        "process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
