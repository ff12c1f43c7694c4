"""`msdiversity emg inspect FILE [--model M] [--grf GRF]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from msdiversity.errors import InputError

app = typer.Typer(help="EMG: inspect raw or enveloped EMG files, their muscle mapping and gait events.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _parse_map(items: list[str] | None) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise InputError(f"--map expects CHANNEL=muscle[+muscle] (or CHANNEL= to drop), got '{it}'", field="--map")
        k, _, v = it.partition("=")
        out[k.strip()] = v.strip()
    return out


def _channel_table(rec, env, mapping) -> Table:
    t = Table(title=f"{Path(rec.source).name}: {len(rec.channels)} EMG channels at {rec.rate:g} Hz, "
                    f"{rec.duration:.4g} s ({'envelopes' if rec.is_envelope else 'raw'}, {rec.units})")
    for c in ("channel", "muscles", "raw range", "envelope peak at"):
        t.add_column(c)
    mus = mapping.channel_muscles if mapping else {}
    why = dict(mapping.unmatched) if mapping else {}
    for k, ch in enumerate(rec.channels):
        x = rec.data[:, k]
        peak_t = env.time[int(np.argmax(env.data[:, k]))]
        t.add_row(ch, ", ".join(mus[ch]) if ch in mus else (f"(unmatched) {why.get(ch, '')}" if mapping else "-"),
                  f"{x.min():.4g} .. {x.max():.4g}", f"{peak_t:.3f} s")
    return t


@app.command("inspect")
def inspect(file: Path = typer.Argument(..., help="EMG file: .anc, .sto/.mot, .csv or .c3d."),
            model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name or MJCF path to map onto."),
            grf: Optional[Path] = typer.Option(None, "--grf", help="OpenSim GRF file of the same trial (gait events)."),
            side: str = typer.Option("r", "--side", help="Side for channels without a side tag: r or l."),
            mapping: Optional[list[str]] = typer.Option(None, "--map", help="CHANNEL=muscle[+muscle] override (repeat)."),
            kind: str = typer.Option("auto", "--kind", help="auto | raw | envelope."),
            lowpass: float = typer.Option(6.0, "--lowpass", help="Envelope low-pass cut-off, Hz."),
            ):
    """Channels, rate, duration, the envelope chain, the mapping report and (with --grf) the gait events."""
    from msdiversity.emg import EnvelopeConfig, envelope, map_channels, model_muscle_names, read_emg
    from msdiversity.motions.cli import _console, _events_table, _warnings_as_lines

    con = _console()
    with _warnings_as_lines():
        rec = read_emg(file, kind=kind)
        env = envelope(rec, EnvelopeConfig(lowpass_hz=lowpass))
        mp = None
        if model:
            from msdiversity.models import load_model

            lm = load_model(model)
            mp = map_channels(rec.channels, model_muscle_names(lm), side=side, overrides=_parse_map(mapping),
                              model=lm.name)
        con.print(f"{file}: {len(rec.channels)} EMG channels, {rec.rate:g} Hz, {rec.duration:.4g} s "
                  f"(t = {rec.time[0]:.4g} .. {rec.time[-1]:.4g} s)", markup=False)
        con.print(_channel_table(rec, env, mp))
        for n in env.notes:
            con.print(f"  {n}", markup=False)
        if mp is not None:
            con.print(mp.summary_line(), markup=False)
        if grf is not None:
            from msdiversity.analysis.gaitcycle import gait_cycles
            from msdiversity.motions.gait import grf_events
            from msdiversity.motions.opensim import read_grf

            g = read_grf(grf)
            ev = grf_events(g)
            con.print(_events_table(ev, (g.time[0], g.time[-1]), f"{grf.name}, {(len(g.time) - 1) / (g.time[-1] - g.time[0]):.4g} Hz"))
            cyc = gait_cycles(ev)
            if cyc is not None:
                con.print(f"  {cyc.describe()}; toe-off at {cyc.toe_off_pct:.1f} % of the cycle", markup=False)
            else:
                con.print("  no complete gait cycle (two heel strikes of one foot) in the GRF", markup=False)
