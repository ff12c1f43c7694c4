"""Command line: `msdiversity models | motion | emg | bench | train | record | analyze | report | run`.

Sub-commands live next to their code (`msdiversity/<area>/cli.py`) and are imported lazily so that
`msdiversity --help` and `msdiversity models` start quickly. User errors print one line and exit 2;
`--debug` shows the traceback.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from msdiversity.errors import MsdError

app = typer.Typer(help=__doc__.split("\n")[0], no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)

STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")):
    """msdiversity: ensembles of muscle-driven emulators, specificity vs diversity, reports."""
    STATE["debug"] = debug


@app.command("models")
def models_cmd():
    """List built-in models: DOF, muscles, tendons, free root, foot contact geoms."""
    from rich.table import Table

    from msdiversity.models import BUILTIN_MODELS, load_model, summarize
    from msdiversity.util.progress import console

    table = Table(title="Built-in models (myo-sim); any MJCF path works too")
    for col in ("name", "DOF", "muscles", "tendons", "free root", "foot geoms (r/l)", "mass kg", "description"):
        table.add_column(col)
    for name, (_, desc) in BUILTIN_MODELS.items():
        s = summarize(load_model(name))
        feet = f"{len(s.foot_geoms['r'])}/{len(s.foot_geoms['l'])}"
        table.add_row(name, str(s.n_dof), str(s.n_muscles), str(s.n_tendons), s.free_root or "-", feet,
                      f"{s.total_mass:.1f}", desc)
    typer.echo(_render(table))


def _render(table) -> str:
    from rich.console import Console

    c = Console(width=160, record=True, file=open("/dev/null", "w"))
    c.print(table)
    return c.export_text()


# (module, attribute, command name) of sub-apps, wired lazily.
_SUBAPPS = [
    ("msdiversity.motions.cli", "app", "motion"),
    ("msdiversity.bench", "app", "bench"),
    ("msdiversity.emg.cli", "app", "emg"),
]
_COMMANDS = [
    ("msdiversity.ensemble.cli", "train", "train"),
    ("msdiversity.recording.cli", "record", "record"),
    ("msdiversity.analysis.cli", "analyze", "analyze"),
    ("msdiversity.report.cli", "report", "report"),
    ("msdiversity.pipeline", "run", "run"),
]


def _wire() -> None:
    for mod, attr, name in _SUBAPPS:
        try:
            sub = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
        app.add_typer(sub, name=name)
    for mod, attr, name in _COMMANDS:
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
        app.command(name)(fn)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    _wire()
    fmt = warnings.formatwarning
    if not debug:  # a warning is one line (category: message), not the source line that raised it
        warnings.formatwarning = _one_line_warning
    try:
        return _main(argv, debug)
    finally:
        warnings.formatwarning = fmt


def _main(argv: list[str], debug: bool) -> int:
    try:
        rv = app(argv, standalone_mode=False)
    except MsdError as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return 130
    except Exception as e:  # click usage errors
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click usage error (vendored by typer)
            e.show()
            return e.exit_code
        if "KeyboardInterrupt" in str(e) and not debug:  # a Ctrl-C that JAX re-raised from a host callback
            typer.echo("interrupted", err=True)
            return 130
        if debug:
            raise
        typer.echo(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    # typer (standalone_mode=False) turns Ctrl-C into a returned 130 rather than raising it
    if isinstance(rv, int) and not isinstance(rv, bool) and rv:
        if rv == 130:
            typer.echo("interrupted", err=True)
        return rv
    return 0


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {category.__name__}: {message}\n"


if __name__ == "__main__":
    sys.exit(main())
