"""Training over several processes (hosts, or GPUs of one host) with `jax.distributed`.

JAX's own runtime is the distributed engine: every process runs the same program on its own
devices, and `jax.devices()` lists the devices of all processes. The ensemble's member axis is
sharded over those devices (`member_mesh`), and each device steps only its own members' physics
(`member_parallel` wraps the vmapped trainer in `jax.shard_map`, so the CPU backend's
`pure_callback` and the mjx-warp kernels run per device on local data, with no traffic between
members). Members are independent, so a sharded run gives the same numbers as a single-process one.

Process settings, first found wins:
1. flags: `msdiversity train --coordinator HOST:PORT --num-processes N --process-id I`;
2. environment: `MSD_COORDINATOR` (or JAX's `JAX_COORDINATOR_ADDRESS`), `MSD_NUM_PROCESSES`,
   `MSD_PROCESS_ID`;
3. SLURM: inside `srun` with more than one task (`SLURM_NTASKS` > 1), JAX reads the coordinator
   (first node of the job), process count and id from SLURM's variables itself
   (`jax.distributed.initialize()` without arguments, as JAX documents).
None of these: a single process, nothing initialised.

Outputs: process 0 writes everything (`metrics.nc`, `members.json`, `experiment.json`, the
checkpoint's settings and history files) and holds the results-folder lock; checkpoints are one
orbax checkpoint to which every process contributes the shards of its members (orbax's
multi-process protocol; the folder must be on a filesystem all processes see). Metrics are gathered
to every process (`to_host`) so all of them take the same decisions (stop, checkpoint, divergence).
On the CPU the collectives are gloo (`jax_cpu_collectives_implementation`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping

import numpy as np

from msdiversity.errors import ConfigError

ENV_COORDINATOR = ("MSD_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
ENV_NUM_PROCESSES = "MSD_NUM_PROCESSES"
ENV_PROCESS_ID = "MSD_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """How this process joins a multi-process run. `slurm=True`: let JAX read SLURM's variables."""

    coordinator: str | None = None  # "host:port" of process 0's coordination service
    num_processes: int | None = None
    process_id: int | None = None
    slurm: bool = False


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected an integer, got {value!r}", field=name) from None


def config_from(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
                environ: Mapping[str, str] | None = None) -> DistributedConfig | None:
    """Process settings from flags, else the environment, else SLURM (see module docstring).

    Returns None for a single-process run. Raises ConfigError for an incomplete or invalid set.
    """
    env = os.environ if environ is None else environ
    coordinator = coordinator or next((env[k] for k in ENV_COORDINATOR if env.get(k)), None)
    n = num_processes if num_processes is not None else env.get(ENV_NUM_PROCESSES) or None
    pid = process_id if process_id is not None else env.get(ENV_PROCESS_ID) or None
    if coordinator is None and n is None and pid is None:
        if env.get("SLURM_JOB_ID") and _int(env.get("SLURM_NTASKS", "1"), "SLURM_NTASKS") > 1:
            return DistributedConfig(slurm=True)
        return None
    n = _int(n, "--num-processes / MSD_NUM_PROCESSES") if n is not None else None
    if n == 1 and coordinator is None:
        return None
    missing = [name for name, v in (("--coordinator / MSD_COORDINATOR", coordinator),
                                    ("--num-processes / MSD_NUM_PROCESSES", n),
                                    ("--process-id / MSD_PROCESS_ID", pid)) if v is None]
    if missing:
        raise ConfigError(f"a multi-process run needs all three settings; missing {', '.join(missing)}",
                          field=missing[0])
    pid = _int(pid, "--process-id / MSD_PROCESS_ID")
    if n < 1 or not 0 <= pid < n:
        raise ConfigError(f"expected 0 <= process id < process count >= 1, got id {pid} of {n}",
                          field="--process-id / MSD_PROCESS_ID")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"expected HOST:PORT, got {coordinator!r}", field="--coordinator / MSD_COORDINATOR")
    return DistributedConfig(coordinator=coordinator, num_processes=n, process_id=pid)


def initialize(cfg: DistributedConfig | None) -> bool:
    """Join the multi-process run `cfg` describes (no-op for None or when already joined).

    Must run before any JAX computation in this process. Returns True when running distributed.
    """
    import jax

    if cfg is None:
        return jax.process_count() > 1 if _initialized() else False
    if _initialized():
        return True
    from jax._src import xla_bridge

    if getattr(xla_bridge, "_backends", {}):
        raise ConfigError("jax.distributed must be initialised before JAX runs anything; pass the process "
                          "settings as flags of `msdiversity train` or set them in the environment before start",
                          field="--coordinator")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices talk over gloo
    if cfg.slurm:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(coordinator_address=cfg.coordinator, num_processes=cfg.num_processes,
                                   process_id=cfg.process_id)
    return True


def _initialized() -> bool:
    import jax

    return bool(jax.distributed.is_initialized())


def ensure_initialized() -> bool:
    """`initialize(config_from())`: join a run described by the environment (or SLURM), if any."""
    return initialize(config_from())


def is_primary() -> bool:
    """True in the process that writes outputs (process 0; always True in a single process)."""
    import jax

    return jax.process_index() == 0


def member_mesh(n_members: int, enabled: bool = True):
    """A 1-D mesh `('member',)` over every device of every process, or None when not sharding.

    Sharding needs >= 2 devices dividing the member count; with several processes it is required
    (a member cannot be split), so a count that does not divide raises ConfigError.
    """
    import jax

    devs = jax.devices()
    if jax.process_count() > 1 and n_members % len(devs):
        raise ConfigError(f"{n_members} members cannot be shared out over {len(devs)} devices of "
                          f"{jax.process_count()} processes; use a multiple of {len(devs)} members",
                          field="ensemble.seeds")
    if not enabled and jax.process_count() > 1:
        raise ConfigError("[ensemble] shard = false cannot run on several processes", field="ensemble.shard")
    if not enabled or len(devs) < 2 or n_members % len(devs):
        return None
    return jax.sharding.Mesh(np.array(devs), ("member",))


def member_parallel(fn: Callable, mesh) -> Callable:
    """`fn` (already vmapped over the leading member axis of every input and output) run per device
    on that device's block of members. Identity when `mesh` is None."""
    import jax
    from jax.sharding import PartitionSpec as P

    if mesh is None:
        return fn
    return jax.shard_map(fn, mesh=mesh, in_specs=P("member"), out_specs=P("member"), check_vma=False)


def put_global(tree, sharding):
    """Place host-identical values (every process computes the same) as arrays sharded by `sharding`."""
    import jax

    if sharding is None:
        return tree

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(one, tree)


def to_host(tree):
    """Numpy copies of (possibly multi-process sharded) arrays, complete in every process."""
    import jax

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def process_suffix() -> str:
    """'' in process 0, '.p<k>' in process k (for per-process logs)."""
    import jax

    return "" if jax.process_index() == 0 else f".p{jax.process_index()}"
