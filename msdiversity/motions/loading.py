"""`load_motion`: one entry point for every reference-motion source."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import numpy as np

from msdiversity.errors import InputError
from msdiversity.motions.reference import ReferenceMotion

SYNTHETIC = "synthetic"


def load_motion(source: str | Path, model=None, grf: str | Path | None = None, rate: float | None = None,
                seed: int = 0, duration: float = 2.0, control_hz: float = 50.0, **synth_kwargs) -> ReferenceMotion:
    """Load a reference motion.

    Args:
        source: an OpenSim `.mot`/`.sto` file, a saved motion `.nc`, an `.npz` with arrays `time`
            (T,), `coords` (T, C), `coord_names` (C,) [+ optional `coord_is_rotation`], or the word
            'synthetic' (forward simulation of `model`, see `synthesize`).
        model: a LoadedModel or model name (needed for 'synthetic').
        grf: an OpenSim GRF file to attach (plates assigned to feet using this motion's pelvis).
        rate: resample to this rate (Hz) after loading.
        seed, duration, control_hz, synth_kwargs: for 'synthetic'.
    """
    if str(source) == SYNTHETIC:
        from msdiversity.models import LoadedModel, load_model
        from msdiversity.motions.synthetic import synthesize

        if model is None:
            raise InputError("a synthetic motion needs a model (e.g. model='myoelbow_2dof')", field="model")
        lm = model if isinstance(model, LoadedModel) else load_model(model)
        motion = synthesize(seed, lm, duration=duration, control_hz=control_hz, **synth_kwargs)
    else:
        path = Path(source)
        if not path.exists():
            raise InputError("motion file not found (expected .mot, .sto, .nc, .npz or 'synthetic')", path=path)
        suf = path.suffix.lower()
        if suf in (".mot", ".sto", ".trc_ik", ".txt"):
            from msdiversity.motions.opensim import read_opensim

            motion = read_opensim(path)
        elif suf == ".nc":
            with _unreadable(path, "a saved motion netCDF (.nc)"):
                motion = ReferenceMotion.load(path)
        elif suf == ".npz":
            with _unreadable(path, "an .npz with arrays time, coords, coord_names"):
                motion = _read_npz(path)
        else:
            raise InputError(f"unknown motion format '{suf}' (expected .mot, .sto, .nc, .npz or 'synthetic')",
                             path=path)
    if grf is not None:
        from msdiversity.motions.opensim import read_grf

        g = read_grf(grf, motion=motion)
        check_grf_overlap(g.time, motion.time, grf)
        motion = motion.with_grf(g)
    if rate is not None:
        motion = motion.resample(rate)
    return motion


@contextlib.contextmanager
def _unreadable(path: Path, expected: str):
    """Turn a reader's low-level failure on a damaged or foreign file into one InputError line."""
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as e:
        raise InputError(f"cannot read this file ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                         f"expected {expected}", path=path) from None


def check_grf_overlap(grf_time: np.ndarray, motion_time: np.ndarray, path) -> float:
    """Fraction (0..1] of the motion's frames inside the GRF file's time span.

    Outside that span the GRF reads zero force, so a GRF file of another trial (no overlap) is an
    InputError naming both spans; partial cover (< 99 % of the frames) is a MotionWarning.
    """
    import warnings

    from msdiversity.motions.opensim import MotionWarning

    t0, t1 = float(grf_time[0]), float(grf_time[-1])
    inside = float(np.mean((motion_time >= t0 - 1e-9) & (motion_time <= t1 + 1e-9)))
    span = f"GRF {t0:.3f}..{t1:.3f} s, motion {float(motion_time[0]):.3f}..{float(motion_time[-1]):.3f} s"
    if inside == 0.0:
        raise InputError(f"the GRF's time span does not overlap the motion's ({span}): is it the same trial?",
                         path=path, field="time")
    if inside < 0.99:
        warnings.warn(f"{path}: GRF covers only {inside:.0%} of the motion's frames ({span}); outside it the "
                      "reference GRF is zero", MotionWarning, stacklevel=3)
    return inside


def _read_npz(path: Path) -> ReferenceMotion:
    with np.load(path, allow_pickle=False) as z:
        for k in ("time", "coords", "coord_names"):
            if k not in z:
                raise InputError(f"missing array '{k}' (need time (T,), coords (T, C), coord_names (C,))",
                                 path=path, field=k)
        names = tuple(str(n) for n in z["coord_names"])
        coords = np.asarray(z["coords"], float)
        if coords.shape != (len(z["time"]), len(names)):
            raise InputError(f"coords has shape {coords.shape}, expected (T={len(z['time'])}, C={len(names)})",
                             path=path, field="coords")
        if "coord_is_rotation" in z:
            is_rot = z["coord_is_rotation"].astype(bool)
        else:
            from msdiversity.motions.opensim import is_translation

            is_rot = np.array([not is_translation(n) for n in names])
        return ReferenceMotion(time=z["time"], coord_names=names, coords=coords, coord_is_rotation=is_rot,
                               meta={"source": str(path), "format": "npz"})


def load_model_reference(source, loaded_model, mapping: dict | None = None, clip: bool = False,
                         negate: bool = False, **kwargs):
    """A `ModelReference` for `loaded_model` from any source: a saved ModelReference `.nc` (from
    `msdiversity motion convert`) is loaded as is; anything `load_motion` reads is mapped with
    `map_to_model`, and so is a `ReferenceMotion` already in memory. Returns (ModelReference,
    MappingReport or None)."""
    from msdiversity.motions.mapping import map_to_model
    from msdiversity.motions.reference import ModelReference, ReferenceMotion

    if isinstance(source, ReferenceMotion):
        return map_to_model(source, loaded_model, mapping=mapping, clip=clip, negate=negate)

    p = Path(str(source))
    if p.suffix.lower() == ".nc" and p.exists():
        import xarray as xr

        with _unreadable(p, "a netCDF motion or ModelReference (.nc)"):
            with xr.open_dataset(p, engine="h5netcdf") as ds:
                kind = ds.attrs.get("kind")
        if kind == "msdiversity.ModelReference":
            ref = ModelReference.load(p)
            nq = loaded_model.model.nq
            if ref.qpos.shape[1] != nq:
                raise InputError(f"reference has qpos of size {ref.qpos.shape[1]}, model {loaded_model.name} has nq={nq}",
                                 path=p, field="qpos")
            return ref, None
    motion = load_motion(source, model=loaded_model, **kwargs)
    return map_to_model(motion, loaded_model, mapping=mapping, clip=clip, negate=negate)
