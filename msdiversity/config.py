"""Experiment files (TOML).

An experiment file has a top-level `name` and sections `[model] [motion] [env] [train] [ensemble]
[record] [analysis] [report]`. This module only parses and validates the file's structure; each
stage owns a dataclass for its section (with `default_config()`-style defaults) and builds it with
`section_to_dataclass`, which rejects unknown keys and wrong types with the file and field named.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Callable

from msdiversity.errors import ConfigError

SECTIONS = ("model", "motion", "env", "train", "qflex", "ensemble", "record", "analysis", "report")

# An experiment name becomes ONE path component (results/<name>/, reports/<name>.html): letters,
# digits, '_', '-', '.', not starting with '.' (so never '.', '..' or a hidden folder), no '/'.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Value rules checked wherever a section is read (`section_to_dataclass`), so every stage's keys are
# validated the same way and before training starts (`msdiversity.pipeline.validate_experiment`).
# (section, key) -> (test of one value (lists: of each element), what is expected). NaN is refused
# everywhere; +-inf only for the keys in ALLOW_INF (where `inf` means "no limit").
_SEED_MAX = 2 ** 32 - 1  # PRNG seeds are uint32
_POS = (lambda v: v > 0, "> 0")
_NONNEG = (lambda v: v >= 0, ">= 0")
_ATLEAST1 = (lambda v: v >= 1, ">= 1")
_SEED = (lambda v: 0 <= v <= _SEED_MAX, f"an integer in [0, {_SEED_MAX}]")
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
RULES: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("train", "iterations"): (lambda v: 1 <= v <= 10 ** 7, "in [1, 10000000]"),
    ("train", "learning_rate"): _POS, ("train", "disc_learning_rate"): _POS, ("train", "max_grad_norm"): _POS,
    ("train", "num_envs"): (lambda v: 1 <= v <= 1 << 20, "in [1, 1048576]"),
    ("train", "unroll_length"): (lambda v: 1 <= v <= 1 << 16, "in [1, 65536]"),
    ("train", "update_epochs"): _ATLEAST1, ("train", "num_minibatches"): _ATLEAST1,
    ("train", "eval_envs"): _ATLEAST1, ("train", "eval_steps"): _ATLEAST1, ("train", "eval_every"): _ATLEAST1,
    ("train", "checkpoint_every"): _ATLEAST1, ("train", "hidden"): _ATLEAST1, ("train", "disc_hidden"): _ATLEAST1,
    ("train", "flow_hidden"): _ATLEAST1, ("train", "exp_scale"): _POS, ("train", "reward_scale"): _POS,
    ("train", "clip_eps"): _POS, ("train", "entropy_cost"): _NONNEG, ("train", "value_cost"): _NONNEG,
    ("train", "exp_weights"): _NONNEG, ("train", "init_excitation"): (lambda v: 0 < v < 1, "in (0, 1)"),
    ("env", "control_hz"): (lambda v: 0 < v <= 10000, "in (0, 10000] Hz"),
    ("env", "episode_length"): _ATLEAST1, ("env", "threads"): _NONNEG,
    ("env", "obs_frames_ahead"): _NONNEG, ("env", "init_activation"): _UNIT,
    **{("env", k): _POS for k in ("scale_joint_pos", "scale_joint_vel", "scale_body_pos", "scale_end_effector",
                                  "scale_root_pos", "scale_root_rot", "scale_grf", "term_joint_err", "term_body_err")},
    **{("env", k): _NONNEG for k in ("term_root_drop", "term_root_rot", "w_pose", "w_vel", "w_end_effector",
                                     "w_body", "k_pose", "k_vel", "k_end_effector", "k_body", "residual_max_force",
                                     "residual_max_torque", "residual_weight")},
    ("motion", "rate"): (lambda v: 0 < v <= 10000, "in (0, 10000] Hz"), ("motion", "seed"): _SEED,
    ("motion", "duration"): (lambda v: 0 < v <= 3600, "in (0, 3600] s"),
    ("motion", "control_hz"): (lambda v: 0 < v <= 10000, "in (0, 10000] Hz"),
    ("motion", "synergies"): _ATLEAST1, ("motion", "cycles"): _ATLEAST1,
    ("ensemble", "seeds"): _SEED, ("ensemble", "effort_exponent"): _ATLEAST1,
    **{("ensemble", k): _NONNEG for k in ("effort_weight", "smoothness_weight", "emg_weight", "synergy_weight")},
    ("record", "trials"): _NONNEG, ("record", "seed"): _SEED, ("record", "chunk"): _ATLEAST1,
    ("analysis", "seed"): _SEED, ("analysis", "n_phase"): (lambda v: v >= 2, ">= 2"),
    ("analysis", "vaf_threshold"): (lambda v: 0 < v <= 1, "in (0, 1]"),
    **{("analysis", k): _ATLEAST1 for k in ("k_max", "n_null", "n_perm", "n_boot", "n_pca", "max_clusters")},
    ("analysis", "vaf_muscle_threshold"): (lambda v: 0 < v <= 1, "in (0, 1]"),
    ("analysis", "family_alpha"): (lambda v: 0 < v < 1, "in (0, 1)"), ("analysis", "n_family_null"): _ATLEAST1,
    ("analysis", "so_exponents"): _ATLEAST1, ("analysis", "band_tolerance"): _NONNEG,
    ("analysis", "id_lowpass_hz"): _NONNEG, ("analysis", "match_joint_rmse_deg"): _NONNEG,
    ("analysis", "match_grf_rmse_pct_bw"): _NONNEG, ("analysis", "match_min_alive"): _UNIT,
}
# keys that must not be empty lists
NON_EMPTY = {("env", "obs_frames_ahead"), ("train", "hidden"), ("ensemble", "seeds")}
ALLOW_INF = {("analysis", "match_joint_rmse_deg"), ("analysis", "match_grf_rmse_pct_bw")}


def validate_name(name: Any, path: Path | None = None, field: str = "name") -> str:
    """The one check of an experiment name: a single safe path component (see `_NAME_RE`)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError("expected a simple name (letters, digits, _ - ., not starting with '.', no '/', at most "
                          f"128 characters): it names results/<name>/ and reports/<name>.html; got {name!r}",
                          path=path, field=field)
    return name


def toml_line(text: str, field: str) -> int | None:
    """1-based line of `section.key` (or of `[section]`, or of a top-level key) in TOML `text`.

    tomllib keeps no positions; experiment files are flat (one table per section), so a scan for
    the section header and then the key's `key =` line is exact for them. None if not found.
    """
    parts = field.split(".")
    if not parts or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts[:2]):
        return None
    sec, key = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    current, section_line = None, None
    for i, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = m.group(1)
            if sec is None and current == key:
                return i  # a [section] itself
            if current == sec:
                section_line = i
            continue
        if current == sec and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return i
    return section_line


def toml_line_of(path: str | Path, field: str) -> int | None:
    """`toml_line` of a TOML file (None if it cannot be read)."""
    try:
        return toml_line(Path(path).read_text(encoding="utf-8"), field)
    except (OSError, UnicodeDecodeError):
        return None


def check_value(section: str, key: str, value: Any, path: Path | None = None) -> None:
    """Apply `RULES` (and the NaN/inf rule) to one key's value; raise ConfigError naming it."""
    field = f"{section}.{key}"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, (list, tuple)) and not items and (section, key) in NON_EMPTY:
        raise ConfigError("expected a non-empty list", path=path, field=field)
    for v in items:
        if isinstance(v, float) and (math.isnan(v) or (math.isinf(v) and (section, key) not in ALLOW_INF)):
            raise ConfigError(f"expected a finite number, got {v!r}", path=path, field=field)
    rule = RULES.get((section, key))
    if rule is None:
        return
    test, expected = rule
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not test(v):
            raise ConfigError(f"expected {expected}, got {value!r}", path=path, field=field)


@dataclasses.dataclass
class Experiment:
    """A parsed experiment file. Sections are plain dicts, validated by each stage's dataclass."""

    name: str
    path: Path | None
    sections: dict[str, dict[str, Any]]

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

    def __post_init__(self):
        validate_name(self.name, self.path)  # every Experiment, however built, names a safe folder

    @property
    def results_dir(self) -> Path:
        return Path("results") / self.name

    @property
    def report_path(self) -> Path:
        return Path("reports") / f"{self.name}.html"

    def to_json(self) -> str:
        return json.dumps({"name": self.name, **self.sections}, sort_keys=True, default=str)


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    if not path.exists():
        raise ConfigError("experiment file not found", path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        raise ConfigError(f"not valid TOML: {e}", path=path, line=int(m.group(1)) if m else None) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file (expected a TOML experiment file)", path=path) from None
    return experiment_from_dict(data, path)


def experiment_from_dict(data: dict[str, Any], path: Path | None = None) -> Experiment:
    data = dict(data)
    name = data.pop("name", None)
    if name is None:
        name = path.stem if path else "experiment"
    validate_name(name, path)
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; expected any of {list(SECTIONS)}", path=path)
    for k, v in data.items():
        if not isinstance(v, dict):
            raise ConfigError("expected a [section] table", path=path, field=k)
    return Experiment(name=name, path=path, sections={k: dict(data.get(k, {})) for k in SECTIONS})


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False
        if args and args[-1] is not Ellipsis and origin is list:
            return all(_type_ok(v, args[0]) for v in value)
        if args and origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return True
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def section_to_dataclass(cls, values: dict[str, Any], section: str, path: Path | None = None):
    """Build dataclass `cls` from a TOML section, rejecting unknown keys and wrong types.

    Lists in TOML become tuples where the field is annotated as a tuple.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key; expected one of {sorted(fields)}", path=path, field=f"{section}.{key}")
        tp = hints[key]
        if not _type_ok(value, tp):
            raise ConfigError(f"expected {tp}, got {value!r}", path=path, field=f"{section}.{key}")
        check_value(section, key, value, path)
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
