"""Experiment sections read by the trainer: `[model]`, `[motion]`, `[ensemble]` (and `[train]`,
`[env]` through their owners' dataclasses), and the expansion of `[ensemble]` into members."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from msdiversity.config import Experiment, check_value, section_to_dataclass
from msdiversity.errors import ConfigError
from msdiversity.learning.regularizers import FIELDS as REG_FIELDS

MODES = ("grid", "list")


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """`[model]`: a built-in name (`msdiversity models`) or an MJCF path."""

    name: str = "myoelbow_2dof"
    strip_meshes: bool | None = None


@dataclasses.dataclass(frozen=True)
class MotionSection:
    """`[motion]`: where the reference comes from (see `msdiversity.motions.load_motion`)."""

    source: str = "synthetic"  # 'synthetic', an OpenSim .mot/.sto, a saved .nc/.npz, a ModelReference .nc
    grf: str | None = None  # OpenSim GRF file of the same trial
    rate: float | None = None  # resample to this rate (Hz) first
    seed: int = 0  # synthetic only
    duration: float = 2.0  # s, synthetic only
    control_hz: float = 50.0  # synthetic only: rate of the synthetic excitation changes
    synergies: int | None = None  # synthetic only: plant this many synergies
    mapping: dict | None = None  # file coordinate -> model joint overrides
    clip: bool = False  # clip coordinates to joint ranges
    negate: bool = False  # negate hinges mostly out of range when the negated values fit (explicit opt-in)
    treadmill: str | float = "auto"  # 'auto' detect + convert to overground, 'off', or the belt speed (m/s)
    periodic: bool = False  # cut one loopable gait cycle (msdiversity.motions.gait.periodic_cycle)
    cycles: int = 1  # strides in that cycle
    emg: str | None = None  # EMG file of the same trial (msdiversity.emg): envelopes for the emg_weight regularizer
    emg_side: str = "r"  # side of EMG channels without a side tag
    emg_mapping: dict | None = None  # EMG channel -> 'muscle+muscle' ('' drops it) overrides
    emg_offset_s: float = 0.0  # EMG time + this = motion file time
    emg_lowpass_hz: float = 6.0  # envelope low-pass cut-off


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """`[ensemble]`: members = seeds x regularizer settings.

    mode = "grid": every combination of `seeds` and each regularizer list.
    mode = "list": the i-th member takes the i-th entry of every list (lists of length 1 broadcast).
    """

    seeds: tuple[int, ...] = (0, 1, 2, 3)
    mode: str = "grid"
    effort_exponent: tuple[float, ...] = (2.0,)
    effort_weight: tuple[float, ...] = (0.1,)
    smoothness_weight: tuple[float, ...] = (0.0,)
    emg_weight: tuple[float, ...] = (0.0,)
    synergy_weight: tuple[float, ...] = (0.0,)
    shard: bool = True  # shard the member axis over jax.devices() when it divides evenly


def section(cls, exp: Experiment, name: str, overrides: dict | None = None):
    values = exp.section(name)
    for k, v in (overrides or {}).items():  # command-line values: their errors name no file line
        check_value(name, k, v)
    values.update(overrides or {})
    return section_to_dataclass(cls, values, name, exp.path)


def expand_members(cfg: EnsembleConfig, path: Path | None = None) -> list[dict[str, Any]]:
    """Members as dicts {member, seed, effort_exponent, effort_weight, ...} in a stable order."""
    if cfg.mode not in MODES:
        raise ConfigError(f"expected one of {MODES}, got {cfg.mode!r}", path=path, field="ensemble.mode")
    lists = {"seed": list(cfg.seeds), **{f: list(getattr(cfg, f)) for f in REG_FIELDS}}
    for k, v in lists.items():
        if not v:
            raise ConfigError("expected a non-empty list", path=path, field=f"ensemble.{k if k != 'seed' else 'seeds'}")
    if cfg.mode == "grid":
        rows = [dict(zip(lists, combo)) for combo in itertools.product(*lists.values())]
    else:
        n = max(len(v) for v in lists.values())
        for k, v in lists.items():
            if len(v) not in (1, n):
                raise ConfigError(f"mode 'list': every list must have length 1 or {n}, got {len(v)}", path=path,
                                  field=f"ensemble.{k if k != 'seed' else 'seeds'}")
        rows = [{k: (v[i] if len(v) > 1 else v[0]) for k, v in lists.items()} for i in range(n)]
    for r in rows:
        if r["effort_exponent"] < 1.0:
            raise ConfigError(f"effort exponents must be >= 1, got {r['effort_exponent']}", path=path,
                              field="ensemble.effort_exponent")
        for f in REG_FIELDS[1:]:
            if r[f] < 0:
                raise ConfigError(f"weights must be >= 0, got {r[f]}", path=path, field=f"ensemble.{f}")
    return [{"member": i, "seed": int(r["seed"]), **{f: float(r[f]) for f in REG_FIELDS}} for i, r in enumerate(rows)]
