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
                                                     help="Output folder (default results/<name>)."),
          coordinator: Optional[str] = typer.Option(None, "--coordinator",
                                                    help="Several processes: HOST:PORT of process 0 (or MSD_COORDINATOR)."),
          num_processes: Optional[int] = typer.Option(None, "--num-processes",
                                                      help="Several processes: how many (or MSD_NUM_PROCESSES)."),
          process_id: Optional[int] = typer.Option(None, "--process-id",
                                                   help="Several processes: this one's id, 0..N-1 (or MSD_PROCESS_ID).")):
    """Train the experiment's ensemble (members = seeds x regularizers) in one vmapped program.

    Several processes/hosts (jax.distributed): start the same command in each with the three
    process options (or the MSD_* variables; under SLURM's srun nothing is needed); the member axis
    is sharded over all their devices and process 0 writes the outputs."""
    from msdiversity.ensemble import distributed

    # before anything runs JAX (importing the trainer does not)
    distributed.initialize(distributed.config_from(coordinator, num_processes, process_id))
    from msdiversity.ensemble.trainer import train_experiment

    overrides = {"iterations": iterations} if iterations is not None else None
    train_experiment(experiment, resume=resume, results_dir=results_dir, train_overrides=overrides, backend=backend)
