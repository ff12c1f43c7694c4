"""Orbax checkpoints of the whole ensemble `TrainState` (members stacked on the leading axis).

`results/<experiment>/checkpoints/<step>/` holds the state after `step` training iterations; the
step's `meta` (the JSON of the settings that shape the program) is checked on resume so a changed
experiment never silently continues an old run.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from msdiversity.errors import ConfigError

META = "meta.json"


class CheckpointMismatch(ConfigError):
    """The checkpoints on disk belong to different settings than the run asking to resume."""


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).absolute(), options=opts)


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict) -> None:
    """Synchronously write `state` as step `step` (and the settings it belongs to)."""
    mngr.save(step, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()
    (Path(mngr.directory) / META).write_text(json.dumps(meta, sort_keys=True, indent=1))


def abstract_like(state, sharding=None):
    """ShapeDtypeStructs (with a sharding) of a state or of an `eval_shape` result."""
    dev = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=dev), state)


def restore_latest(mngr: ocp.CheckpointManager, abstract, meta: dict | None = None):
    """(step, state) of the newest checkpoint, or (None, None) when there is none."""
    step = mngr.latest_step()
    if step is None:
        return None, None
    if meta is not None:
        p = Path(mngr.directory) / META
        old = json.loads(p.read_text()) if p.exists() else None
        if old is not None and old != json.loads(json.dumps(meta, sort_keys=True)):
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise CheckpointMismatch(f"checkpoints in {mngr.directory} were written with different settings ({', '.join(diff)}); "
                              "train without --resume to start over, or restore the old experiment file")
    return step, mngr.restore(step, args=ocp.args.StandardRestore(abstract))
