"""Experiment files (TOML).

An experiment file has a top-level `name` and sections `[model] [motion] [env] [train] [ensemble]
[record] [analysis] [report]`. This module only parses and validates the file's structure; each
stage owns a dataclass for its section (with `default_config()`-style defaults) and builds it with
`section_to_dataclass`, which rejects unknown keys and wrong types with the file and field named.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from msdiversity.errors import ConfigError

SECTIONS = ("model", "motion", "env", "train", "qflex", "ensemble", "record", "analysis", "report")


@dataclasses.dataclass
class Experiment:
    """A parsed experiment file. Sections are plain dicts, validated by each stage's dataclass."""

    name: str
    path: Path | None
    sections: dict[str, dict[str, Any]]

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

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
        raise ConfigError(f"not valid TOML: {e}", path=path) from None
    return experiment_from_dict(data, path)


def experiment_from_dict(data: dict[str, Any], path: Path | None = None) -> Experiment:
    data = dict(data)
    name = data.pop("name", None) or (path.stem if path else "experiment")
    if not isinstance(name, str) or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise ConfigError(f"expected a simple name (letters, digits, _ - .), got {name!r}", path=path, field="name")
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
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
