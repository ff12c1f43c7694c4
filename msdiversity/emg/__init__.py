"""EMG: readers (`.anc`, `.sto`/`.mot`, `.csv`, `.c3d`), the envelope chain, channel -> muscle mapping.

    rec = read_emg("emg_walk_raw.anc")              # EmgRecording, raw A/D counts
    env = envelope(rec, EnvelopeConfig())             # normalised linear envelopes
    mp = map_channels(env.channels, muscle_names, side="r", model="myolegs")
    data, muscles = per_muscle(env.data, env.channels, mp)

`load_envelopes` does all three; `attach_to_motion` puts the result on a `ReferenceMotion` (its
`emg` / `emg_names`), which `map_to_model` carries to the `ModelReference` the emulator and the
`emg_weight` regularizer read. See docs/METHODS_emg.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from msdiversity.emg.envelope import EnvelopeConfig, envelope, linear_envelope, normalise
from msdiversity.emg.io import EmgRecording, read_emg
from msdiversity.emg.mapping import DEFAULT_TABLE, EmgMapping, map_channels, per_muscle, resample_onto
from msdiversity.errors import InputError

__all__ = ["EnvelopeConfig", "envelope", "linear_envelope", "normalise", "EmgRecording", "read_emg",
           "DEFAULT_TABLE", "EmgMapping", "map_channels", "per_muscle", "resample_onto", "load_envelopes",
           "attach_to_motion", "attach_to_reference", "model_muscle_names"]


def model_muscle_names(loaded_model) -> list[str]:
    """Muscle actuator names of a LoadedModel (or a model name)."""
    import mujoco

    from msdiversity.models import load_model
    from msdiversity.models.registry import muscle_ids

    lm = load_model(loaded_model) if isinstance(loaded_model, str) else loaded_model
    m = lm.model
    return [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in muscle_ids(m)]


def load_envelopes(path, model_muscles, model: str = "model", side: str = "r", overrides: dict | None = None,
                   cfg: EnvelopeConfig | None = None, kind: str = "auto"):
    """Read, envelope and map an EMG file. Returns (enveloped EmgRecording, EmgMapping)."""
    rec = envelope(read_emg(path, kind=kind), cfg or EnvelopeConfig())
    return rec, map_channels(rec.channels, model_muscles, side=side, overrides=overrides, model=model)


def attach_to_motion(motion, env: EmgRecording, mapping: EmgMapping, time_offset: float = 0.0):
    """The motion with `emg` (T, E) = the mapped envelopes linearly resampled onto its time (EMG time
    + `time_offset` s = motion time), NaN where the EMG does not cover it.

    Raises InputError when the EMG and the motion do not overlap in time."""
    data, names = per_muscle(env.data, env.channels, mapping)
    t_emg = env.time + float(time_offset)
    lo, hi = max(t_emg[0], motion.time[0]), min(t_emg[-1], motion.time[-1])
    if hi <= lo:
        raise InputError(f"EMG spans {t_emg[0]:.4g}..{t_emg[-1]:.4g} s but the motion {motion.time[0]:.4g}.."
                         f"{motion.time[-1]:.4g} s: no overlap (same trial? set the time offset)",
                         path=env.source, field="time")
    emg = resample_onto(t_emg, data, motion.time)
    cover = float(np.mean(np.isfinite(emg[:, 0])))
    meta = dict(motion.meta, emg_source=env.source, emg_processing=list(env.notes),
                emg_mapping=mapping.summary_line(), emg_coverage=cover)
    return dataclasses.replace(motion, emg=emg, emg_names=names, meta=meta)


def attach_to_reference(ref, env: EmgRecording, mapping: EmgMapping, actuator_names, time_offset: float = 0.0):
    """A `ModelReference` with `emg` (T, nu): each mapped muscle's envelope, linearly resampled onto the
    reference's frames (source time = meta['t0'] + frame x dt; EMG time + `time_offset` s = source
    time); NaN for actuators without EMG and where the EMG does not cover a frame.

    Raises InputError when the EMG does not overlap the reference in time."""
    data, names = per_muscle(env.data, env.channels, mapping)
    t_ref = float(ref.meta.get("t0", 0.0)) + np.arange(ref.qpos.shape[0]) * float(ref.dt)
    t_emg = env.time + float(time_offset)
    if min(t_emg[-1], t_ref[-1]) <= max(t_emg[0], t_ref[0]):
        raise InputError(f"EMG spans {t_emg[0]:.4g}..{t_emg[-1]:.4g} s but the reference {t_ref[0]:.4g}.."
                         f"{t_ref[-1]:.4g} s: no overlap (EMG of another trial? set [motion] emg_offset_s)",
                         path=env.source, field="time")
    on_ref = resample_onto(t_emg, data, t_ref)
    acts = list(actuator_names)
    emg = np.full((len(t_ref), len(acts)), np.nan)
    for k, m in enumerate(names):
        emg[:, acts.index(m)] = on_ref[:, k]
    cover = float(np.mean(np.isfinite(on_ref[:, 0])))
    meta = dict(ref.meta, emg_source=env.source, emg_processing=list(env.notes), emg_mapping=mapping.summary_line(),
                emg_coverage=cover)
    return dataclasses.replace(ref, emg=emg, meta=meta)
