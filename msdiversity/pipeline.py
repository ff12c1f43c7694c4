"""`msdiversity run experiments/<name>.toml`: train -> record -> analyze -> report, with caching.

Caching ("current" outputs)
---------------------------
Every stage declares the experiment sections it depends on, the files it reads (outputs of earlier
stages, plus user files named in the config such as a motion file or an MJCF path) and the files it
writes. Its *key* is the SHA-256 of: the stage name, the JSON of those sections (after command-line
overrides), the content digests of its input files, and the msdiversity version. After a stage
succeeds, `results/<experiment>/stages.json` stores its key, the digest of each output, the time it
took and when it finished. On the next run a stage is skipped when its stored key equals the new key
and every output still exists with the stored digest; otherwise it (and, because their input digests
change, every later stage that reads its outputs) runs again. `--force` reruns every stage;
`--force-stage record` reruns one stage (and what then changes downstream). Changing code does not
invalidate results unless the msdiversity version changes: use `--force` after editing the code.

Overrides and results directories
---------------------------------
`--model`, `--motion`, `--members`, `--seeds`, `--backend`, `--steps` change the experiment's sections
(see `apply_overrides` for exactly which keys). Any override also changes the experiment *name*
(and so `results/<name>/` and `reports/<name>.html`): `<file name>-<override slug>`, e.g.
`default-motion_arm26_InverseKinematics-members8`, so a run with overrides never overwrites the
plain experiment's results; `--name` sets the name explicitly. Because the stage keys hash the
sections, even a reused name never mixes results from different settings: stale stages rerun.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from msdiversity.config import Experiment, load_experiment, validate_name
from msdiversity.errors import ConfigError
from msdiversity.util.io import file_digest, results_lock, write_text_atomic

STAGES_FILE = "stages.json"


# --------------------------------------------------------------------------------------------------
# Digests and stage bookkeeping
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Context:
    """What a stage function gets: the (overridden) experiment, where to write, and progress hooks."""

    experiment: Experiment
    results_dir: Path
    report_path: Path
    progress: Any = None  # rich Progress shared by the whole pipeline (or None)
    task: Any = None      # this stage's task id in `progress`
    options: dict = dataclasses.field(default_factory=dict)  # e.g. {"backend": "cpu"}
    forced: bool = False  # the user asked to redo this stage (--force / --force-stage): no resuming

    def update(self, completed: float | None = None, total: float | None = None, info: str = "") -> None:
        """Report sub-progress of the running stage on the shared display."""
        if self.progress is not None and self.task is not None:
            kw = {"info": info}
            if total is not None:
                kw["total"] = total
            if completed is not None:
                kw["completed"] = completed
            self.progress.update(self.task, **kw)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One pipeline step. Paths in `inputs`/`outputs` are relative to the results dir; the token
    `{report}` stands for the report path. `extra_inputs(ctx)` names user files (motion, model)."""

    name: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    fn: Callable[[Context], Any]
    extra_inputs: Callable[[Context], list[Path]] = lambda ctx: []

    def _path(self, ctx: Context, rel: str) -> Path:
        return ctx.report_path if rel == "{report}" else ctx.results_dir / rel

    def input_paths(self, ctx: Context) -> list[Path]:
        return [self._path(ctx, r) for r in self.inputs] + list(self.extra_inputs(ctx))

    def output_paths(self, ctx: Context) -> list[Path]:
        return [self._path(ctx, r) for r in self.outputs]

    def key(self, ctx: Context, version: str) -> str:
        payload = {
            "stage": self.name,
            "version": version,
            "sections": {s: ctx.experiment.sections.get(s, {}) for s in self.sections},
            "options": {k: ctx.options[k] for k in sorted(ctx.options)},
            "inputs": {str(p): file_digest(p) for p in self.input_paths(ctx)},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def read_stages(results_dir: Path) -> dict:
    p = Path(results_dir) / STAGES_FILE
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text()).get("stages", {})
    except (ValueError, AttributeError):
        return {}  # unreadable bookkeeping: treat every stage as stale


def write_stages(results_dir: Path, stages: dict) -> None:
    write_text_atomic(Path(results_dir) / STAGES_FILE, json.dumps({"stages": stages}, indent=2, sort_keys=True))


def is_current(stage: Stage, ctx: Context, key: str, record: dict | None) -> tuple[bool, str]:
    """(current?, reason) for a stage given its new key and its stored record."""
    if not record:
        return False, "never run"
    if record.get("key") != key:
        return False, "settings or inputs changed"
    for p in stage.output_paths(ctx):
        d = file_digest(p)
        if d is None:
            return False, f"output missing: {p}"
        if record.get("outputs", {}).get(str(p)) != d:
            return False, f"output changed since it was written: {p}"
    return True, "up to date"


@dataclasses.dataclass
class StageResult:
    name: str
    ran: bool
    reason: str
    seconds: float


def run_stages(stages: list[Stage], ctx: Context, *, force: bool = False, force_stages: tuple[str, ...] = (),
               version: str | None = None, progress=None, on_event: Callable[[str], None] | None = None
               ) -> list[StageResult]:
    """Run `stages` in order, skipping current ones. Keys are computed just before each stage runs,
    so a stage whose inputs were rewritten upstream is rerun. Returns what happened to each."""
    from msdiversity import __version__

    version = version or __version__
    say = on_event or (lambda s: None)
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    book = read_stages(ctx.results_dir)
    results = []
    overall = progress.add_task("pipeline", total=len(stages), info="") if progress is not None else None
    for st in stages:
        sctx = dataclasses.replace(ctx, progress=progress)
        missing = [p for p in st.input_paths(ctx) if not p.exists()]
        if missing:
            raise ConfigError(f"stage '{st.name}' needs {missing[0]}, which does not exist")
        key = st.key(ctx, version)
        current, reason = is_current(st, ctx, key, book.get(st.name))
        if force or st.name in force_stages:
            current, reason = False, "forced"
        if current:
            results.append(StageResult(st.name, False, reason, 0.0))
            say(f"{st.name}: skipped ({reason}; finished {book[st.name].get('finished', '?')})")
        else:
            say(f"{st.name}: running ({reason})")
            task = progress.add_task(st.name, total=None, info="") if progress is not None else None
            sctx = dataclasses.replace(sctx, task=task, forced=reason == "forced")
            t0 = time.perf_counter()
            st.fn(sctx)
            dt = time.perf_counter() - t0
            outs = {}
            for p in st.output_paths(ctx):
                d = file_digest(p)
                if d is None:
                    raise RuntimeError(f"stage '{st.name}' finished but did not write {p}")
                outs[str(p)] = d
            book[st.name] = {"key": key, "outputs": outs, "seconds": round(dt, 3),
                             "finished": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
            write_stages(ctx.results_dir, book)
            if progress is not None:
                progress.update(task, total=1, completed=1, info=f"{dt:.1f} s")
            results.append(StageResult(st.name, True, reason, dt))
            say(f"{st.name}: done in {dt:.1f} s")
        if progress is not None:
            progress.advance(overall)
    return results


# --------------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------------

def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", s).strip("_")[:40]


def override_suffix(overrides: dict[str, Any]) -> str:
    """Readable, deterministic name suffix for the given overrides ({} -> '')."""
    parts = []
    for k in ("model", "motion", "members", "seeds", "backend", "steps"):
        v = overrides.get(k)
        if v is None:
            continue
        if k in ("model", "motion"):
            v = Path(str(v)).stem if ("/" in str(v) or "." in Path(str(v)).name) else str(v)
        elif isinstance(v, (list, tuple)):
            v = "_".join(str(x) for x in v)
        parts.append(f"{k}{'_' if k in ('model', 'motion', 'backend') else ''}{_slug(str(v))}")
    return "-".join(parts)


def parse_seeds(text: str | None) -> list[int] | None:
    """'4' -> [0, 1, 2, 3]; '0,3,7' -> [0, 3, 7]; '2-5' -> [2, 3, 4, 5]."""
    if text is None:
        return None
    t = text.strip()
    try:
        if "," in t:
            return [int(x) for x in t.split(",") if x.strip()]
        if re.fullmatch(r"\d+-\d+", t):
            a, b = (int(x) for x in t.split("-"))
            return list(range(a, b + 1))
        n = int(t)
    except ValueError:
        raise ConfigError(f"expected a count (4), a list (0,3,7) or a range (2-5), got {text!r}",
                          field="--seeds") from None
    if n < 1:
        raise ConfigError("expected at least 1 seed", field="--seeds")
    return list(range(n))


def _abs_if_file(value: str) -> str:
    """Motion/model overrides given on the command line are relative to the working directory."""
    p = Path(value).expanduser()
    return str(p.resolve()) if p.exists() else value


def apply_overrides(exp: Experiment, *, model: str | None = None, motion: str | None = None,
                    members: int | None = None, seeds: list[int] | None = None, backend: str | None = None,
                    steps: int | None = None, name: str | None = None) -> tuple[Experiment, dict[str, Any]]:
    """Return (experiment with overrides applied, the overrides that were given).

    - `model`: `[model] name` (a built-in name or an MJCF path).
    - `motion`: `[motion] source` ('synthetic' or a motion file); a file path is made absolute.
      Switching to a file drops the synthetic-only keys (seed, duration, control_hz, synergies) so they
      do not enter the stage keys; switching to 'synthetic' keeps the file's other keys.
    - `seeds`: `[ensemble] seeds`.
    - `members`: the first N members of the ensemble grid (seeds x regularizer lists, seeds varying
      slowest), with the seed list extended (max seed + 1, + 2, ...) until the grid has N members;
      written as `[ensemble] mode = "list"` with one entry per member, so exactly N members train.
    - `backend`: `[env] backend` (auto | cpu | mjx ...); it is part of the stage keys because the
      physics backends differ numerically.
    - `steps`: training length in environment (control) steps *per member*:
      `[train] iterations = ceil(steps / (num_envs * unroll_length))`.
    - `name`: the experiment (and results/report) name; by default `<name>-<override slug>`.
    """
    import math

    sections = json.loads(json.dumps(exp.sections))  # deep copy
    given = {k: v for k, v in dict(model=model, motion=motion, members=members, seeds=seeds, backend=backend,
                                   steps=steps).items() if v is not None}
    if model is not None:
        sections["model"]["name"] = _abs_if_file(model) if model.endswith(".xml") else model
    if motion is not None:
        src = motion if motion == "synthetic" else _abs_if_file(motion)
        if src != "synthetic" and not Path(src).exists():
            raise ConfigError("motion file not found (expected 'synthetic' or a .mot/.sto/.nc/.npz file)",
                              path=motion, field="--motion")
        mo = sections["motion"]
        if src != "synthetic":
            for k in ("seed", "duration", "control_hz", "synergies"):
                mo.pop(k, None)
            if exp.sections["motion"].get("source", "synthetic") == "synthetic":
                mo.pop("grf", None)
        mo["source"] = src
    ens = sections["ensemble"]
    if seeds is not None:
        ens["seeds"] = list(seeds)
    if members is not None:
        if members < 1:
            raise ConfigError("expected at least 1 member", field="--members")
        from msdiversity.ensemble.config import EnsembleConfig, expand_members, section as esection

        probe = Experiment(exp.name, exp.path, {**sections, "ensemble": ens})
        cfg = esection(EnsembleConfig, probe, "ensemble")
        rows = expand_members(cfg, exp.path)
        if cfg.mode == "grid":
            per_seed = len(rows) // len(cfg.seeds)
            extra = math.ceil(max(members - len(rows), 0) / per_seed)
            seed_list = list(cfg.seeds) + [max(cfg.seeds) + 1 + i for i in range(extra)]
            rows = expand_members(dataclasses.replace(cfg, seeds=tuple(seed_list)), exp.path)
        elif members > len(rows):
            raise ConfigError(f"[ensemble] mode 'list' defines {len(rows)} members; cannot make {members}",
                              path=exp.path, field="--members")
        rows = rows[:members]
        from msdiversity.learning.regularizers import FIELDS as REG_FIELDS

        ens.update(mode="list", seeds=[r["seed"] for r in rows], **{f: [r[f] for r in rows] for f in REG_FIELDS})
    if backend is not None:
        sections["env"]["backend"] = backend
    if steps is not None:
        if steps < 1:
            raise ConfigError("expected a positive number of environment steps", field="--steps")
        from msdiversity.ensemble.config import section as esection
        from msdiversity.learning.ppo import TrainConfig

        tc = esection(TrainConfig, Experiment(exp.name, exp.path, sections), "train")
        sections["train"]["iterations"] = max(1, math.ceil(steps / (tc.num_envs * tc.unroll_length)))
    if name is not None:
        validate_name(name, field="--name")
    new_name = name or (f"{exp.name}-{override_suffix(given)}" if given else exp.name)
    return Experiment(validate_name(new_name[:128], exp.path), exp.path, sections), given


REPORT_KEYS = ("title",)


def validate_experiment(exp: Experiment) -> None:
    """Check every section of `exp` (keys, types, value rules of `msdiversity.config.RULES`, the
    stages' own checks, user files named) before any stage runs or any folder is made, so a bad
    `[record]`/`[analysis]`/`[report]` value fails in seconds, not after training."""
    from msdiversity.analysis.core import AnalysisConfig
    from msdiversity.emulator import EnvConfig
    from msdiversity.ensemble.build import _resolve, check_motion_options
    from msdiversity.ensemble.config import EnsembleConfig, ModelSection, MotionSection, expand_members, section
    from msdiversity.learning import QflexConfig, TrainConfig
    from msdiversity.recording.recorder import RecordConfig

    section(TrainConfig, exp, "train").validate(exp.path)
    section(QflexConfig, exp, "qflex").validate(exp.path)
    expand_members(section(EnsembleConfig, exp, "ensemble"), exp.path)
    section(ModelSection, exp, "model")
    mo = section(MotionSection, exp, "motion")
    check_motion_options(mo, exp)
    for key in ("source", "grf"):
        v = getattr(mo, key)
        if v is not None and v != "synthetic" and not Path(_resolve(v, exp)).is_file():
            raise ConfigError(f"file not found: {v} (relative paths are relative to the experiment file's folder)",
                              path=exp.path, field=f"motion.{key}")
    section(EnvConfig, exp, "env")
    section(RecordConfig, exp, "record")
    section(AnalysisConfig, exp, "analysis")
    opts = exp.section("report")
    unknown = sorted(set(opts) - set(REPORT_KEYS))
    if unknown:
        raise ConfigError(f"unknown key; expected one of {list(REPORT_KEYS)}", path=exp.path, field=f"report.{unknown[0]}")
    if "title" in opts and not isinstance(opts["title"], str):
        raise ConfigError(f"expected a string, got {opts['title']!r}", path=exp.path, field="report.title")


# --------------------------------------------------------------------------------------------------
# The four stages
# --------------------------------------------------------------------------------------------------

def _motion_and_model_files(ctx: Context) -> list[Path]:
    """User files named in [model]/[motion] (their contents enter the train and record keys)."""
    from msdiversity.ensemble.build import user_files

    return user_files(ctx.experiment)


def _train(ctx: Context) -> None:
    from msdiversity.ensemble import train_experiment

    def on_iteration(it: int, m: dict) -> None:
        err = m.get("joint_err_deg")
        ctx.update(info=f"iteration {it + 1}" + (f", joint err {float(err.mean()):.2f} deg" if err is not None else ""))

    # An interrupted (Ctrl-C saves a checkpoint) or extended (more iterations) run continues from its
    # newest checkpoint instead of starting over; checkpoints of other settings are replaced.
    from msdiversity.ensemble.checkpoint import CheckpointMismatch

    ckpt = ctx.results_dir / "checkpoints"
    resume = not ctx.forced and ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())
    try:
        train_experiment(ctx.experiment, results_dir=ctx.results_dir, on_iteration=on_iteration, resume=resume)
    except CheckpointMismatch:
        train_experiment(ctx.experiment, results_dir=ctx.results_dir, on_iteration=on_iteration, resume=False)


def _record(ctx: Context) -> None:
    from msdiversity.recording.cli import run_recording

    run_recording(ctx.experiment, ctx.results_dir)


def _analyze(ctx: Context) -> None:
    from msdiversity.analysis.cli import run_analysis
    from msdiversity.analysis.core import AnalysisConfig
    from msdiversity.config import section_to_dataclass

    cfg = section_to_dataclass(AnalysisConfig, ctx.experiment.section("analysis"), "analysis", ctx.experiment.path)
    run_analysis(ctx.results_dir / "recording.nc", ctx.results_dir / "analysis.nc", cfg)


def _report(ctx: Context) -> None:
    from msdiversity.report.build import build_report, load_inputs

    opts = ctx.experiment.section("report")  # checked by validate_experiment
    build_report(load_inputs(ctx.results_dir), ctx.report_path, title=opts.get("title"))


TRAIN_OUTPUTS = ("checkpoints", "metrics.nc", "members.json", "experiment.json")


def default_stages() -> list[Stage]:
    """train -> record -> analyze -> report, with the sections and files each depends on."""
    return [
        Stage("train", ("model", "motion", "env", "train", "qflex", "ensemble"), (), TRAIN_OUTPUTS, _train,
              extra_inputs=_motion_and_model_files),
        Stage("record", ("model", "motion", "env", "record"), ("checkpoints", "members.json", "experiment.json"),
              ("recording.nc",), _record, extra_inputs=_motion_and_model_files),
        Stage("analyze", ("analysis",), ("recording.nc",), ("analysis.nc",), _analyze),
        Stage("report", ("report",), ("recording.nc", "analysis.nc", "metrics.nc"), ("{report}",), _report),
    ]


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

def run(
    experiment: Path = typer.Argument(..., help="Experiment file, e.g. experiments/default.toml."),
    force: bool = typer.Option(False, "--force", help="Redo every stage even if its outputs are current."),
    force_stage: list[str] = typer.Option([], "--force-stage", help="Redo this stage (repeatable): "
                                          "train, record, analyze, report."),
    model: str | None = typer.Option(None, "--model", help="Model: built-in name or MJCF path (model.name)."),
    motion: str | None = typer.Option(None, "--motion", help="Reference motion: 'synthetic' or an OpenSim "
                                      ".mot/.sto (or .nc/.npz) file (motion.source)."),
    members: int | None = typer.Option(None, "--members", help="Train exactly N members: the first N of the "
                                       "seeds x regularizers grid, extending the seeds as needed."),
    seeds: str | None = typer.Option(None, "--seeds", help="Seeds: a count (4 = 0..3), a list (0,3,7) or a "
                                     "range (2-5) (ensemble.seeds)."),
    backend: str | None = typer.Option(None, "--backend", help="Physics backend: auto | cpu | mjx | mjx-warp (env.backend)."),
    steps: int | None = typer.Option(None, "--steps", help="Training length in environment steps per member "
                                     "(sets train.iterations = ceil(steps / (num_envs * unroll_length)))."),
    name: str | None = typer.Option(None, "--name", help="Experiment name (results/<name>, reports/<name>.html); "
                                    "default: the file's name, plus an override slug when overriding."),
    check: bool = typer.Option(False, "--check", help="Open the finished report in headless Chromium and check "
                               "that every figure rendered."),
):
    """Train -> record -> analyze -> report; stages whose outputs are current are skipped."""
    from msdiversity.util.progress import console, make_progress

    exp0 = load_experiment(experiment)
    exp, given = apply_overrides(exp0, model=model, motion=motion, members=members, seeds=parse_seeds(seeds),
                                 backend=backend, steps=steps, name=name)
    names = [s.name for s in default_stages()]
    bad = [s for s in force_stage if s not in names]
    if bad:
        raise ConfigError(f"unknown stage(s) {bad}; expected any of {names}", field="--force-stage")
    validate_experiment(exp)  # before any folder is made or any stage runs
    ctx = Context(experiment=exp, results_dir=exp.results_dir, report_path=exp.report_path)
    console.print(f"[bold]msdiversity run[/] {exp.name}" + (f" (overrides: {given})" if given else "")
                  + f" -> {ctx.results_dir}/")
    t0 = time.perf_counter()
    from msdiversity.physics.cpu import mujoco_warnings

    # one process per results folder; MuJoCo's warnings counted into the folder's log
    with results_lock(ctx.results_dir), mujoco_warnings(ctx.results_dir / "MUJOCO_LOG.TXT") as (mjw, _):
        try:
            with make_progress() as progress:
                results = run_stages(default_stages(), ctx, force=force, force_stages=tuple(force_stage),
                                     progress=progress, on_event=lambda s: progress.console.print(f"  {s}"))
        finally:
            if mjw.count:
                console.print(f"[yellow]{mjw.summary()}[/]")
    if check:
        from msdiversity.report.cli import check_in_browser

        check_in_browser(ctx.report_path, ctx.results_dir / "report.png")
    ran = [r.name for r in results if r.ran]
    took = ", ".join(f"{r.name} {r.seconds:.0f} s" for r in results if r.ran)
    console.print(f"done in {time.perf_counter() - t0:.1f} s: " + (f"ran {took}" if ran else "all stages current")
                  + (f"; skipped {', '.join(r.name for r in results if not r.ran)}" if len(ran) < len(results) else ""))
    console.print(f"report: [bold]{ctx.report_path}[/]")
    typer.echo(str(ctx.report_path))
