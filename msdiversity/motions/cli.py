"""`msdiversity motion inspect | convert | synth`."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from msdiversity.errors import InputError

app = typer.Typer(help="Reference motions: inspect OpenSim files, convert onto a model, synthesize.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _console() -> Console:
    return Console(width=140, soft_wrap=False, highlight=False)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show every warning raised inside as one 'warning: ...' line on stderr (no source lines)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            err = Console(stderr=True, width=200, highlight=False)
            for w in caught:
                msg = str(w.message)
                if msg not in seen:
                    seen.add(msg)
                    err.print(f"warning: {msg}", markup=False)


def _parse_map(items: list[str] | None) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise InputError(f"--map expects FILE_COORD=MODEL_JOINT (or FILE_COORD= to drop), got '{it}'",
                             field="--map")
        k, _, v = it.partition("=")
        out[k.strip()] = v.strip()
    return out


def _fmt_range(lo: float, hi: float, rot: bool) -> str:
    if rot:
        return f"{np.rad2deg(lo):8.1f} .. {np.rad2deg(hi):7.1f} deg"
    return f"{lo:8.3f} .. {hi:7.3f} m"


def _motion_tables(motion) -> list:
    t = Table(title=f"{Path(str(motion.meta.get('source', 'motion'))).name}: {motion.coords.shape[1]} coordinates")
    for c in ("coordinate", "kind", "range", "peak speed"):
        t.add_column(c)
    vel = np.abs(motion.velocities).max(0) if motion.n_frames > 1 else np.zeros(len(motion.coord_names))
    for i, n in enumerate(motion.coord_names):
        rot = bool(motion.coord_is_rotation[i])
        t.add_row(n, "rotation" if rot else "translation", _fmt_range(motion.coords[:, i].min(), motion.coords[:, i].max(), rot),
                  f"{np.rad2deg(vel[i]):.0f} deg/s" if rot else f"{vel[i]:.2f} m/s")
    return [t]


def _grf_table(motion) -> Table:
    g = motion.grf
    t = Table(title="Ground reaction force per foot (MuJoCo frame, Z up)")
    for c in ("foot", "peak vertical N", "mean vertical N", "loaded frames"):
        t.add_column(c)
    for fi, foot in enumerate(g.feet):
        fz = g.force[:, fi, 2]
        t.add_row(foot, f"{fz.max():.0f}", f"{fz.mean():.0f}", f"{int(np.sum(~np.isnan(g.cop[:, fi, 0])))}/{len(fz)}")
    return t


def _report_tables(rep) -> list:
    t = Table(title=f"Mapping onto {rep.model}")
    t.add_column("file coordinate")
    t.add_column("model")
    t.add_column("note")
    neg = set(rep.negated)
    for fn, mn in rep.matched:
        note = []
        if mn in neg:
            note.append("negated (sign convention)")
        if mn in rep.out_of_range:
            note.append(f"{rep.out_of_range[mn]} frames out of range{' (clipped)' if rep.clipped else ''}")
        t.add_row(fn, mn, "; ".join(note))
    for fn in rep.root:
        t.add_row(fn, f"{rep.root_joint} (free root)", "")
    for fn in rep.unmatched_file:
        t.add_row(fn, "(unmatched)", "not in the model")
    out = [t]
    if rep.unmatched_model or rep.coupled:
        t2 = Table(title=f"{rep.model} joints not driven by the file")
        t2.add_column("model joint")
        t2.add_column("how it is set")
        for mn, drv in rep.coupled:
            t2.add_row(mn, f"coupled to {drv} (equality constraint)")
        for mn in rep.unmatched_model:
            t2.add_row(mn, f"(unmatched) held at {rep.base}")
        out.append(t2)
    return out


def _events_table(events: dict, t_span: tuple[float, float], source: str) -> Table:
    from msdiversity.motions.gait import MIN_STANCE_S, MIN_SWING_S

    t = Table(title=f"Gait events, s ({source}; vertical GRF > 20 N, stance >= {MIN_STANCE_S:g} s, "
                    f"swing >= {MIN_SWING_S:g} s)")
    for c in ("foot", "heel strikes", "toe-offs"):
        t.add_column(c)
    lo, hi = t_span
    fmt = lambda a: ", ".join(f"{x:.4g}" for x in a if lo - 1e-9 <= x <= hi + 1e-9) or "-"  # noqa: E731
    for foot, ev in events.items():
        t.add_row(foot, fmt(ev["heel_strike"]), fmt(ev["toe_off"]))
    return t


def _gait_lines(ref, lm) -> list[str]:
    """Treadmill detection and the periodic cycle a `[motion] treadmill = "auto"`, `periodic = true`
    experiment would use (one line each; a reason when not available)."""
    from msdiversity.motions.gait import apply_gait_options

    out = []
    ref2, notes = apply_gait_options(ref, lm, treadmill="auto")
    out += notes
    try:
        _, notes = apply_gait_options(ref2, lm, treadmill="off", periodic=True)
        out += notes
    except InputError as e:
        out.append(f"periodic: not available ({e.reason})")
    return out


def _describe(motion) -> str:
    return (f"{motion.duration:.4g} s at {motion.rate:.4g} Hz ({motion.n_frames} frames, "
            f"t = {motion.time[0]:.4g} .. {motion.time[-1]:.4g} s)")


@app.command("inspect")
def inspect(file: str = typer.Argument(..., help="OpenSim .mot/.sto, saved .nc/.npz motion."),
            model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name or MJCF path to map onto."),
            grf: Optional[Path] = typer.Option(None, "--grf", help="OpenSim GRF file of the same trial."),
            mapping: Optional[list[str]] = typer.Option(None, "--map", help="FILE_COORD=MODEL_JOINT override (repeat)."),
            ):
    """Show columns, duration, rate and (with --model) the mapping report."""
    from msdiversity.motions.loading import load_motion

    con = _console()
    with _warnings_as_lines():
        motion = load_motion(file, grf=grf)
        con.print(f"{file}: {_describe(motion)}", markup=False)
        for tab in _motion_tables(motion):
            con.print(tab)
        if motion.grf is not None:
            from msdiversity.motions.gait import grf_events

            con.print(_grf_table(motion))
            for n in motion.grf.notes:
                con.print(f"  GRF: {n}", markup=False)
            if grf is not None:  # the file's own (full) rate times the events best
                from msdiversity.motions.opensim import read_grf

                raw = read_grf(grf, motion=motion)
                events, src = grf_events(raw), f"{(len(raw.time) - 1) / (raw.time[-1] - raw.time[0]):.4g} Hz GRF file"
            else:
                events, src = grf_events(motion.grf, time=motion.time), "motion's GRF"
            con.print(_events_table(events, (motion.time[0], motion.time[-1]), src))
        if motion.excitation is not None:
            con.print(f"ground truth: excitation and activation for {len(motion.muscle_names)} muscles", markup=False)
        if model:
            from msdiversity.models import load_model
            from msdiversity.motions.mapping import map_to_model

            lm = load_model(model)
            ref, rep = map_to_model(motion, lm, mapping=_parse_map(mapping), strict=False)  # inspect shows, never refuses
            for tab in _report_tables(rep):
                con.print(tab)
            for n in rep.notes:
                if not n.startswith("source ") and "->" not in n:
                    con.print(f"  note: {n}", markup=False)
            con.print(rep.summary_line(), markup=False)
            if rep.root:
                for line in _gait_lines(ref, lm):
                    con.print(f"  gait: {line}", markup=False)


def _gait_options(ref, lm, treadmill: str, periodic: bool, cycles: int):
    from msdiversity.motions.gait import apply_gait_options

    return apply_gait_options(ref, lm, treadmill=treadmill, periodic=periodic, cycles=cycles)


@app.command("convert")
def convert(file: str = typer.Argument(..., help="OpenSim .mot/.sto (or saved motion .nc/.npz)."),
            model: str = typer.Option(..., "--model", "-m", help="Model name or MJCF path."),
            out: Path = typer.Option(..., "--out", "-o", help="Output netCDF (a ModelReference)."),
            grf: Optional[Path] = typer.Option(None, "--grf", help="OpenSim GRF file of the same trial."),
            rate: Optional[float] = typer.Option(None, "--rate", help="Resample to this rate (Hz) first."),
            mapping: Optional[list[str]] = typer.Option(None, "--map", help="FILE_COORD=MODEL_JOINT override (repeat); "
                                                        "'=-JOINT' negates, 'COORD=' drops."),
            clip: bool = typer.Option(False, "--clip", help="Clip values outside joint ranges."),
            negate: bool = typer.Option(False, "--negate", help="Negate hinges mostly outside their range when the "
                                        "negated values fit (opposite sign convention)."),
            treadmill: str = typer.Option("auto", "--treadmill", help="'auto' (detect a treadmill trial and convert "
                                          "it to overground), 'off', or the belt speed in m/s."),
            periodic: bool = typer.Option(False, "--periodic", help="Keep one loopable gait cycle."),
            cycles: int = typer.Option(1, "--cycles", help="Strides in that cycle."),
            ):
    """Map a motion onto a model and save what the emulator consumes (qpos, qvel, GRF, masks)."""
    from msdiversity.models import load_model
    from msdiversity.motions.gait import parse_treadmill
    from msdiversity.motions.loading import load_motion
    from msdiversity.motions.mapping import map_to_model

    try:
        parse_treadmill(treadmill)
    except InputError as e:
        raise InputError(e.reason, field="--treadmill") from None
    if cycles < 1:
        raise InputError(f"expected an integer >= 1, got {cycles}", field="--cycles")
    if rate is not None and not 0 < rate <= 10000:
        raise InputError(f"expected a rate in (0, 10000] Hz, got {rate}", field="--rate")
    if out.is_dir() or out.suffix.lower() != ".nc":
        raise InputError("expected the path of a .nc file to write (not a folder)", path=out, field="--out")
    con = _console()
    with _warnings_as_lines():
        motion = load_motion(file, grf=grf, rate=rate)
        lm = load_model(model)
        ref, rep = map_to_model(motion, lm, mapping=_parse_map(mapping), clip=clip, negate=negate)
        ref, notes = _gait_options(ref, lm, treadmill, periodic, cycles)
        ref.save(out)
    con.print(rep.summary_line(), markup=False)
    for n in notes:
        if not n.endswith("does not drive it)"):
            con.print(f"  gait: {n}", markup=False)
    con.print(f"wrote {out}: {ref.n_frames} frames at {1 / ref.dt:.4g} Hz, qpos {ref.qpos.shape}"
              f"{', GRF per foot' if ref.grf is not None else ''}", markup=False)


@app.command("synth")
def synth(model: str = typer.Option(..., "--model", "-m", help="Model name or MJCF path."),
          out: Path = typer.Option(..., "--out", "-o", help="Output netCDF (a ReferenceMotion with ground truth)."),
          seed: int = typer.Option(0, "--seed"),
          duration: float = typer.Option(2.0, "--duration", help="s"),
          control_hz: float = typer.Option(50.0, "--control-hz", help="control and recording rate"),
          synergies: Optional[int] = typer.Option(None, "--synergies", help="plant this many synergies"),
          ):
    """Forward-simulate the model under seeded smooth excitations; save motion + true excitations."""
    from msdiversity.models import load_model
    from msdiversity.motions.synthetic import synthesize

    con = _console()
    with _warnings_as_lines():
        lm = load_model(model)
        motion = synthesize(seed, lm, duration=duration, control_hz=control_hz, n_components=synergies)
        motion.save(out)
    ranges = ", ".join(f"{n} {np.rad2deg(lo):.0f}..{np.rad2deg(hi):.0f} deg"
                       for n, (lo, hi) in list(motion.meta["joint_range_visited"].items())[:6])
    con.print(f"wrote {out}: {_describe(motion)}, {len(motion.muscle_names)} muscles, seed {seed}, "
              f"{motion.meta['attempts']} draw(s); joints visited: {ranges}", markup=False)
