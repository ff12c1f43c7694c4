"""Experiment -> (loaded model, ModelReference, env). Shared by training and `load_trained`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from msdiversity.config import Experiment
from msdiversity.ensemble.config import ModelSection, MotionSection, section
from msdiversity.errors import ConfigError, InputError


@dataclasses.dataclass
class Built:
    loaded: object  # LoadedModel
    reference: object  # ModelReference
    env: object  # emulator Env
    motion_desc: str


def _resolve(p: str | None, exp: Experiment) -> str | None:
    """Relative paths in an experiment file are relative to the file's folder, else to the cwd."""
    if p is None or p == "synthetic":
        return p
    q = Path(p)
    if not q.is_absolute() and exp.path is not None and (Path(exp.path).parent / q).exists():
        return str(Path(exp.path).parent / q)
    return str(q)


def user_files(exp: Experiment) -> list[Path]:
    """The user's own files an experiment reads: [motion] source/grf (resolved like `build_env` does)
    and a [model] given as an MJCF path. Their contents decide whether training results are current."""
    motion = exp.section("motion")
    paths = [_resolve(motion.get(k), exp) for k in ("source", "grf", "emg")] + [exp.section("model").get("name")]
    return [Path(p) for p in paths if p and p != "synthetic" and Path(p).is_file()]


def check_motion_options(mo: MotionSection, exp: Experiment) -> None:
    """Reject bad `[motion] treadmill / cycles` values with the experiment file named."""
    from msdiversity.motions.gait import parse_treadmill

    try:
        parse_treadmill(mo.treadmill)
    except InputError as e:
        raise ConfigError(e.reason, path=exp.path, field="motion.treadmill") from None
    if mo.cycles < 1:
        raise ConfigError(f"expected an integer >= 1, got {mo.cycles}", path=exp.path, field="motion.cycles")


def apply_motion_options(ref, loaded, mo: MotionSection):
    """`[motion] treadmill` (conversion to overground) then `periodic`/`cycles` (one loopable cycle) on a
    mapped reference; decisions are recorded in ref.meta['treadmill'] / ['periodic']."""
    from msdiversity.motions.gait import apply_gait_options

    ref, notes = apply_gait_options(ref, loaded, treadmill=mo.treadmill, periodic=mo.periodic, cycles=mo.cycles)
    return dataclasses.replace(ref, meta=dict(ref.meta, gait_notes=notes)) if notes else ref


def attach_emg(ref, loaded, mo: MotionSection, exp: Experiment):
    """`[motion] emg`: read, envelope and map the EMG file onto the model's muscles and put the
    envelopes on the reference (`ModelReference.emg`), for the `emg_weight` regularizer."""
    import mujoco

    from msdiversity import emg as E

    path = _resolve(mo.emg, exp)
    try:
        env, mp = E.load_envelopes(path, E.model_muscle_names(loaded), model=loaded.name, side=mo.emg_side,
                                   overrides=mo.emg_mapping, cfg=E.EnvelopeConfig(lowpass_hz=mo.emg_lowpass_hz))
        if not mp.matched:
            raise InputError(f"no EMG channel maps onto a muscle ({mp.summary_line()}); give [motion] emg_mapping",
                             path=path, field="emg")
        acts = [mujoco.mj_id2name(loaded.model, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(loaded.model.nu)]
        return E.attach_to_reference(ref, env, mp, acts, time_offset=mo.emg_offset_s)
    except InputError as e:
        raise ConfigError(str(e), path=exp.path, field="motion.emg") from None


def build_env(exp: Experiment, backend: str | None = None, env_overrides: dict | None = None) -> Built:
    from msdiversity.emulator import EnvConfig, make_env
    from msdiversity.models import load_model
    from msdiversity.motions.loading import load_model_reference

    ms = section(ModelSection, exp, "model")
    mo = section(MotionSection, exp, "motion")
    ec = section(EnvConfig, exp, "env", env_overrides)
    loaded = load_model(ms.name, strip_meshes=ms.strip_meshes)
    src = _resolve(mo.source, exp)
    kw = {}
    if src == "synthetic":
        kw = dict(seed=mo.seed, duration=mo.duration, control_hz=mo.control_hz)
        if mo.synergies is not None:
            kw["n_components"] = mo.synergies
    check_motion_options(mo, exp)
    ref, _ = load_model_reference(src, loaded, mapping=mo.mapping, clip=mo.clip, negate=mo.negate, grf=_resolve(mo.grf, exp),
                                  rate=mo.rate, **kw)
    if mo.emg:  # before the gait options: a periodic cut carries (and mirrors) the EMG columns
        ref = attach_emg(ref, loaded, mo, exp)
    ref = apply_motion_options(ref, loaded, mo)
    env = make_env(loaded, ref, ec, backend=backend)
    desc = (f"synthetic (seed {mo.seed}, {mo.duration} s)" if src == "synthetic" else Path(src).name)
    return Built(loaded=loaded, reference=ref, env=env, motion_desc=desc)
