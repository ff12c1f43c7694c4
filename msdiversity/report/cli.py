"""`msdiversity report EXPERIMENT`: write `reports/<experiment>.html` from `results/<experiment>/`."""

from __future__ import annotations

from pathlib import Path

import typer

from msdiversity.errors import ConfigError


def resolve(experiment: Path) -> tuple[str, Path, Path]:
    """(name, results_dir, report_path) for an experiment file or a results directory."""
    if experiment.is_dir():
        return experiment.name, experiment, Path("reports") / f"{experiment.name}.html"
    if experiment.suffix == ".toml":
        from msdiversity.config import load_experiment

        exp = load_experiment(experiment)
        return exp.name, exp.results_dir, exp.report_path
    raise ConfigError("expected an experiment file (.toml) or a results directory", path=experiment)


def report(
    experiment: Path = typer.Argument(..., help="Experiment file (experiments/<name>.toml) or results directory."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report path (default reports/<name>.html)."),
    title: str | None = typer.Option(None, help="Page title (default 'Diversity report: <name>')."),
    check: bool = typer.Option(False, "--check", help="Open the report in headless Chromium and verify every "
                               "figure rendered with no console errors."),
    screenshot: Path | None = typer.Option(None, help="With --check: save a full-page PNG here."),
):
    """Write the self-contained HTML diversity report from recording.nc, analysis.nc and metrics.nc."""
    from msdiversity.report.build import build_report, load_inputs
    from msdiversity.util.progress import console

    name, results_dir, report_path = resolve(experiment)
    path = build_report(load_inputs(results_dir), out or report_path)
    size = path.stat().st_size / 1e6
    if check:
        check_in_browser(path, screenshot)
    console.print(f"report: {path} ({size:.1f} MB)")
    typer.echo(str(path))


def check_in_browser(path: Path, screenshot: Path | None = None) -> None:
    """Run the headless-Chromium check and raise a one-line error when it fails."""
    from msdiversity.errors import InputError
    from msdiversity.report.browser import check_report
    from msdiversity.util.progress import console

    try:
        c = check_report(path, screenshot)
    except FileNotFoundError as e:
        raise InputError(f"cannot check the report: {e}; install it with `apt-get install chromium`") from None
    if not c.ok:
        raise InputError(f"report check failed: missing figures {c.missing}, console errors {c.console_errors}, "
                         f"external resources {c.external_resources}", path=path)
    console.print(f"browser check: {len(c.rendered_ids)}/{len(c.figure_ids)} figures rendered, no console errors"
                  + (f"; screenshot {c.screenshot}" if c.screenshot else ""))
