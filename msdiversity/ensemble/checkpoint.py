"""Orbax checkpoints of the whole ensemble `TrainState` (members stacked on the leading axis).

`results/<experiment>/checkpoints/<step>/` holds the state after `step` training iterations; the
step's `meta` (the JSON of the settings that shape the program) is checked on resume so a changed
experiment never silently continues an old run. `history-<step>.npz` beside it holds the metric rows
0..step of that checkpoint, so a resume never depends on `metrics.nc` having been rewritten.

Integrity: a save writes the history and `meta.json` atomically *before* orbax commits the step
(orbax renames a finished temporary folder into place, so a step folder is whole or absent); a step
that is already on disk is not saved again. On restore an unreadable newest step falls back to the
newest intact one with one message.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from msdiversity.errors import ConfigError, InputError
from msdiversity.util.io import atomic_path, write_text_atomic

META = "meta.json"
HISTORY = "history-{step}.npz"


class CheckpointMismatch(ConfigError):
    """The checkpoints on disk belong to different settings than the run asking to resume."""


def manager(directory: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False,
                                        cleanup_tmp_directories=True)  # folders of a killed save
    return ocp.CheckpointManager(Path(directory).absolute(), options=opts)


def save_history(directory: Path, step: int, rows: dict[int, dict[str, np.ndarray]]) -> None:
    """Metric rows {iteration: {name: (members,)}} of iterations <= step, atomically."""
    flat = {f"{i}/{k}": np.asarray(v) for i, r in rows.items() if i <= step for k, v in r.items()}
    with atomic_path(Path(directory) / HISTORY.format(step=step)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **flat)


def load_history(directory: Path, step: int) -> dict[int, dict[str, np.ndarray]] | None:
    """The rows `save_history` wrote for `step`, or None when absent or unreadable."""
    p = Path(directory) / HISTORY.format(step=step)
    if not p.is_file():
        return None
    try:
        with np.load(p) as z:
            rows: dict[int, dict[str, np.ndarray]] = {}
            for key in z.files:
                i, name = key.split("/", 1)
                rows.setdefault(int(i), {})[name] = z[key]
        return rows
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _prune_history(directory: Path, keep: set[int]) -> None:
    for p in Path(directory).glob("history-*.npz"):
        stem = p.stem.split("-", 1)[1]
        if stem.isdigit() and int(stem) not in keep:
            p.unlink(missing_ok=True)


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict,
         history: dict[int, dict[str, np.ndarray]] | None = None) -> bool:
    """Synchronously write `state` as step `step` (and the settings and metric history it belongs to).

    Returns False (and writes nothing) when step `step` is already on disk: it holds this very state
    (a Ctrl-C right after a periodic checkpoint), and orbax refuses to write a step twice.
    """
    directory = Path(mngr.directory)
    if step in set(mngr.all_steps()):
        return False
    # several processes (msdiversity.ensemble.distributed): all take part in the orbax save (each
    # writes its members' shards), only process 0 writes the side files
    primary = jax.process_index() == 0
    if history is not None and primary:
        save_history(directory, step, history)
    if primary:
        write_text_atomic(directory / META, json.dumps(meta, sort_keys=True, indent=1))
    mngr.save(step, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()
    if primary:
        _prune_history(directory, set(mngr.all_steps()))
    return True


def abstract_like(state, sharding=None):
    """ShapeDtypeStructs (with a sharding) of a state or of an `eval_shape` result."""
    dev = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=dev), state)


def _check_meta(directory: Path, meta: dict) -> None:
    p = directory / META
    if not p.exists():
        return
    try:
        old = json.loads(p.read_text())
    except (ValueError, OSError) as e:
        raise CheckpointMismatch(f"{p} is unreadable ({type(e).__name__}), so the settings of these checkpoints are "
                                 "unknown; train without --resume to start over") from None
    if old != json.loads(json.dumps(meta, sort_keys=True)):
        diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        raise CheckpointMismatch(f"checkpoints in {directory} were written with different settings ({', '.join(diff)}); "
                                 "train without --resume to start over, or restore the old experiment file")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def restore_latest(mngr: ocp.CheckpointManager, abstract, meta: dict | None = None,
                   say: Callable[[str], None] | None = None):
    """(step, state) of the newest *intact* checkpoint, or (None, None) when there is none.

    A step that cannot be read (truncated or missing array files) is skipped with one message
    through `say` (default: a warning); if no step can be read, InputError names the folder.
    """
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        return None, None
    directory = Path(mngr.directory)
    if meta is not None:
        _check_meta(directory, meta)
    say = say or (lambda s: logging.getLogger(__name__).warning(s))
    absl = logging.getLogger("absl")
    level = absl.level
    failures = []
    for step in steps:
        absl.setLevel(logging.CRITICAL)  # orbax logs each failed read at length; one line is enough
        try:
            state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # noqa: BLE001  (tensorstore/orbax raise many types for a damaged file)
            failures.append(f"step {step}: {_first_line(e)}")
            continue
        finally:
            absl.setLevel(level)
        if failures:
            say(f"checkpoint {'; '.join(failures)} in {directory} is unreadable; resuming from step {step}, the "
                "newest intact one")
        return step, state
    raise InputError(f"no readable checkpoint ({'; '.join(failures)}); delete the folder or rerun with --force",
                     path=directory)
