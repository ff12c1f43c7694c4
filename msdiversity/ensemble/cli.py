"""`msdiversity train experiments/<name>.toml [--resume]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train(experiment: Path = typer.Argument(..., help="Experiment TOML file."),
          resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
          iterations: Optional[int] = typer.Option(None, "--iterations", help="Override train.iterations."),
          backend: Optional[str] = typer.Option(None, "--backend", help="Physics backend: auto | cpu | mjx (impl jax) | mjx-warp."),
          results_dir: Optional[Path] = typer.Option(None, "--results-dir",
                                                     help="Output folder (default results/<name>).")):
    """Train the experiment's ensemble (members = seeds x regularizers) in one vmapped program."""
    from msdiversity.ensemble.trainer import train_experiment

    overrides = {"iterations": iterations} if iterations is not None else None
    train_experiment(experiment, resume=resume, results_dir=results_dir, train_overrides=overrides, backend=backend)
