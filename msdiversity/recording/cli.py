"""`msdiversity record EXPERIMENT`: roll out the trained ensemble -> results/<experiment>/recording.nc."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from msdiversity.errors import ConfigError


def _config(exp) -> "RecordConfig":  # noqa: F821
    from msdiversity.config import section_to_dataclass
    from msdiversity.recording.recorder import RecordConfig

    cfg = section_to_dataclass(RecordConfig, exp.section("record"), "record", exp.path)
    if cfg.trials < 0 or cfg.chunk < 1:
        raise ConfigError(f"expected trials >= 0 and chunk >= 1, got {cfg.trials}, {cfg.chunk}", path=exp.path,
                          field="record.trials")
    return cfg


def run_recording(experiment, results_dir: Path | None = None, backend: str | None = None,
                  show_progress: bool = True, **overrides) -> Path:
    """Record `experiment` (a parsed Experiment or a TOML path) from its results folder (the pipeline's entry)."""
    from msdiversity.config import Experiment, load_experiment
    from msdiversity.recording.recorder import record_experiment

    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    cfg = dataclasses.replace(_config(exp), **{k: v for k, v in overrides.items() if v is not None})
    return record_experiment(Path(results_dir) if results_dir else exp.results_dir, cfg, backend=backend,
                             show_progress=show_progress)


def record(
    experiment: Path = typer.Argument(..., help="Experiment file (experiments/<name>.toml) or results directory."),
    trials: int | None = typer.Option(None, help="Stochastic trials per member (trial 0, deterministic, on top; "
                                                 "default from record.trials, else 4)."),
    seed: int | None = typer.Option(None, help="PRNG seed of the stochastic trials."),
    backend: str | None = typer.Option(None, help="Physics backend: auto | cpu | mjx (default: the experiment's)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output (default results/<name>/recording.nc)."),
):
    """Deterministic (mean-action) and stochastic rollouts of every member over the whole reference."""
    from msdiversity.config import load_experiment
    from msdiversity.recording.recorder import RecordConfig, record_experiment

    if trials is not None and trials < 0:
        raise ConfigError(f"--trials must be >= 0, got {trials}", field="trials")
    over = {k: v for k, v in {"trials": trials, "seed": seed}.items() if v is not None}
    if experiment.is_dir():
        results_dir, cfg = experiment, RecordConfig()
    elif experiment.suffix == ".toml":
        exp = load_experiment(experiment)
        results_dir, cfg = exp.results_dir, _config(exp)
    else:
        raise ConfigError("expected an experiment file (.toml) or a results directory", path=experiment)
    path = record_experiment(results_dir, dataclasses.replace(cfg, **over), backend=backend, out=out)
    typer.echo(str(path))
