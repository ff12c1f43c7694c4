"""`msdiversity analyze EXPERIMENT`: results/<experiment>/recording.nc -> analysis.nc."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from msdiversity.errors import ConfigError


def resolve(experiment: Path):
    """(name, results_dir, AnalysisConfig) for an experiment file (.toml) or a results directory."""
    from msdiversity.analysis.core import AnalysisConfig
    from msdiversity.config import load_experiment, section_to_dataclass

    experiment = Path(experiment)
    if experiment.is_dir():
        return experiment.name, experiment, AnalysisConfig()
    if experiment.suffix == ".toml":
        exp = load_experiment(experiment)
        cfg = section_to_dataclass(AnalysisConfig, exp.section("analysis"), "analysis", exp.path)
        return exp.name, exp.results_dir, cfg
    raise ConfigError("expected an experiment file (.toml) or a results directory", path=experiment)


def run_analysis(recording_path: Path, out_path: Path, config=None, show_progress: bool = True) -> Path:
    """Analyse `recording_path` and write `out_path` atomically; prints a one-line summary.

    This is the function the pipeline calls (no typer involved)."""
    from msdiversity.analysis.core import AnalysisConfig, analyze_recording, load_recording, save_analysis
    from msdiversity.util.progress import console, make_progress

    cfg = config or AnalysisConfig()
    rec = load_recording(recording_path)
    t0 = time.perf_counter()
    if show_progress:
        with make_progress(transient=True) as prog:
            tasks: dict[str, int] = {}

            def cb(stage: str, done: int, total: int):
                if stage not in tasks:
                    tasks[stage] = prog.add_task(stage, total=max(total, 1), info="")
                prog.update(tasks[stage], completed=done, total=max(total, 1),
                            info=f"{done / max(time.perf_counter() - t0, 1e-9):.1f}/s" if done else "")

            ds = analyze_recording(rec, cfg, progress=cb)
    else:
        ds = analyze_recording(rec, cfg)
    save_analysis(ds, out_path)
    row = {str(t): float(p) for t, p in zip(ds["test"].values, ds["stat_p"].values)}
    head = (f"analysis: {ds.sizes['member']} members ({ds.attrs.get('n_members_matched', ds.sizes['member'])} compared), "
            f"joint RMSE {float(ds['spec_joint_rmse_deg'].mean()):.2f} deg, ")
    if ds.attrs.get("diversity_refused"):
        body = f"diversity NOT computed ({ds.attrs['diversity_refused']})"
    else:
        idx = ds["div_index"].values
        null = (f", null-space fraction {float(ds['div_null_fraction'][0]):.2f}" if "div_null_fraction" in ds else "")
        test = next((t for t in ("act_vs_external", "act_vs_kinematics") if t in row), "")
        body = (f"diversity index {idx[0]:.2f} [{idx[1]:.2f}, {idx[2]:.2f}]{null}, k={int(ds['syn_k_common'])}, "
                f"families={int(ds['emb_n_families'])}, p({test})={row.get(test, float('nan')):.3g}")
    console.print(head + body + f" in {time.perf_counter() - t0:.1f} s -> {out_path}")
    return Path(out_path)


def analyze(
    experiment: Path = typer.Argument(..., help="Experiment file (experiments/<name>.toml) or results directory."),
    recording: Path | None = typer.Option(None, help="Recording (default results/<name>/recording.nc)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output (default results/<name>/analysis.nc)."),
    seed: int | None = typer.Option(None, help="Seed for permutations, bootstrap, NMF, UMAP (overrides config)."),
    baselines: bool | None = typer.Option(None, "--baselines/--no-baselines",
                                          help="Inverse dynamics, static optimisation, feasible ranges."),
    umap: bool | None = typer.Option(None, "--umap/--no-umap", help="UMAP embedding (slow first call)."),
):
    """Specificity, diversity, synergies, embedding, classical baselines and statistics -> analysis.nc."""
    import dataclasses

    name, results_dir, cfg = resolve(experiment)
    over = {k: v for k, v in {"seed": seed, "baselines": baselines, "umap": umap}.items() if v is not None}
    cfg = dataclasses.replace(cfg, **over)
    path = run_analysis(recording or results_dir / "recording.nc", out or results_dir / "analysis.nc", cfg)
    typer.echo(str(path))
