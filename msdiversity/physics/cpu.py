"""CPU backend: MuJoCo C through `mujoco.batch.Batch`, called from inside jit.

`step` is a `jax.pure_callback` with `vmap_method='broadcast_all'`: under any nesting of `vmap`
(members x envs) JAX calls the host function ONCE with every simulation stacked, and that call steps
all of them on the batch's thread pool. The host function only copies arrays: the state rows of the
batch are written from the JAX state, the batch steps, and one packed float32 array is read back.

GRF without Python loops: the simulated model is the user's model plus one MuJoCo `contact` sensor
per foot body (body1 = foot body, body2 = world, reduce = netforce, data = force + pos). MuJoCo
computes, for every simulation, the net contact force the world exerts on that body in the world
frame and its centre of pressure; the batch copies `sensordata` out with the other bound fields.
The sensors add no dynamics. `tests/test_physics_grf.py` checks them against `mj_contactForce`
rotated by `contact.frame`.

Divergence: a simulation that raises in MuJoCo (SimulationError), triggers an instability warning
(bad qpos/qvel/qacc; MuJoCo would silently auto-reset it), produces non-finite or huge values, gets
its *input* state back and `diverged=True`; the others are untouched.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import threading
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import batch as mjbatch

from msdiversity.errors import ModelError
from msdiversity.models import LoadedModel, registry
from msdiversity.physics.base import FEET, PhysicsSpec, PhysicsState, StepOutputs, cop_from_forces, make_spec

# contact sensor data bits: found=1, force=2, torque=4, dist=8, pos=16, ...; reduce 3 = netforce
_CONTACT_DATA = 2 | 16
_NETFORCE = 3
_BAD_WARNINGS = [int(mujoco.mjtWarning.mjWARN_BADQPOS), int(mujoco.mjtWarning.mjWARN_BADQVEL),
                 int(mujoco.mjtWarning.mjWARN_BADQACC), int(mujoco.mjtWarning.mjWARN_BADCTRL)]
# |qpos| or |qvel| beyond this is a blown-up simulation, long before MuJoCo's own 1e10 check.
HUGE = 1e4
_STAGE_VEL = int(mujoco.mjtStage.mjSTAGE_VEL)
_STAGE_ACC = int(mujoco.mjtStage.mjSTAGE_ACC)


class MujocoWarnings:
    """Counts MuJoCo's warnings (installed as `mju_user_warning`) and writes them to a log file.

    MuJoCo's default handler prints every warning to stdout and appends it to `MUJOCO_LOG.TXT` in
    the working directory; a diverging batch prints one line per simulation per step. Here each
    message is counted by kind and logged (the first `MAX_LOGGED`; the file is opened on the first
    warning, so a clean run leaves none); `summary()` is the one line to show.
    """

    MAX_LOGGED = 10_000

    def __init__(self, log_path: str | Path):
        self.log_path = Path(log_path)
        self.count = 0
        self.kinds: collections.Counter = collections.Counter()
        self._file = None
        self._lock = threading.Lock()  # called from the batch's worker threads

    def __call__(self, message: str) -> None:
        with self._lock:
            self.count += 1
            # 'Nan, Inf or huge value in QACC at DOF 3. The simulation is unstable. Time = 0.01.' -> kind
            self.kinds[re.split(r" at | Time = |\. ", message, maxsplit=1)[0].strip(". ")] += 1
            if self.count <= self.MAX_LOGGED:
                if self._file is None:
                    self.log_path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.log_path, "a", encoding="utf-8")
                self._file.write(f"WARNING: {message}\n")
                if self.count == self.MAX_LOGGED:
                    self._file.write("... further warnings are counted, not logged\n")

    def summary(self) -> str:
        """e.g. "MuJoCo: 3650 warnings (3650 x 'Nan, Inf or huge value in QACC'); diverged simulations
        were restored and counted as failures; log: results/x/MUJOCO_LOG.TXT" ('' when none)."""
        if not self.count:
            return ""
        kinds = ", ".join(f"{n} x '{k}'" for k, n in self.kinds.most_common(3))
        return (f"MuJoCo: {self.count} warning{'s' if self.count != 1 else ''} ({kinds}); diverged simulations "
                f"were restored and counted as failures; log: {self.log_path}")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


_ACTIVE: list[MujocoWarnings] = []


@contextlib.contextmanager
def mujoco_warnings(log_path: str | Path):
    """Route MuJoCo's warnings to a `MujocoWarnings` logging to `log_path` for the block.

    Yields (handler, owned): nested blocks share the outermost handler (owned False), so a
    pipeline and its train stage count into one log and only the owner prints the summary.
    """
    if _ACTIVE:
        yield _ACTIVE[-1], False
        return
    w = MujocoWarnings(log_path)
    prev = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(w)
    _ACTIVE.append(w)
    try:
        yield w, True
    finally:
        mujoco.set_mju_user_warning(prev)
        _ACTIVE.pop()
        w.close()


def _foot_bodies(model: mujoco.MjModel) -> list[tuple[int, str]]:
    """(side index, body name) of every body carrying foot contact geoms."""
    out = []
    for k, side in enumerate(FEET):
        names = registry.foot_geoms(model)[side]
        bodies = sorted({int(model.geom_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g)])
                         for g in names})
        out += [(k, mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b)) for b in bodies]
    return out


def model_with_contact_sensors(loaded: LoadedModel) -> tuple[mujoco.MjModel, np.ndarray, np.ndarray]:
    """Recompile `loaded` with one netforce contact sensor per foot body.

    Returns:
        (model, sensor_adr (k,) start of each sensor's 6 values in sensordata,
         side_matrix (2, k) which foot each sensor belongs to).
    Raises ModelError if the recompiled model differs from the loaded one in anything but sensors.
    Simulation options set with `registry.with_options` (`loaded.options`) are applied to it.
    """
    base = loaded.model
    feet = _foot_bodies(base)
    if not feet:
        return base, np.zeros(0, int), np.zeros((2, 0))
    # a fresh spec prepared exactly as load_model prepared the loaded one
    spec = registry.load_spec(loaded.source, strip_meshes=bool(loaded.stripped_geoms or loaded.stripped_meshes))
    names = []
    for k, body in feet:
        name = f"msd_grf_{FEET[k]}_{body}"
        spec.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_CONTACT, objtype=mujoco.mjtObj.mjOBJ_BODY,
                        objname=body, reftype=mujoco.mjtObj.mjOBJ_BODY, refname="world",
                        intprm=[_CONTACT_DATA, _NETFORCE, 1])
        names.append(name)
    model = registry._quiet_compile(spec.compile)  # noqa: SLF001
    registry.apply_options(model, loaded.options)  # timestep/integrator/... set by registry.with_options
    same = (model.nq == base.nq and model.nv == base.nv and model.nu == base.nu and model.nbody == base.nbody
            and model.ngeom == base.ngeom and np.allclose(model.body_mass, base.body_mass)
            and np.allclose(model.actuator_gainprm, base.actuator_gainprm)
            and np.allclose(model.actuator_lengthrange, base.actuator_lengthrange))
    if not same:
        raise ModelError(f"{loaded.name}: recompiling with GRF sensors changed the model; cannot measure GRF")
    adr = np.array([model.sensor_adr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, n)] for n in names])
    side = np.zeros((2, len(feet)))
    for j, (k, _) in enumerate(feet):
        side[k, j] = 1.0
    return model, adr, side


class CpuBackend:
    """MuJoCo C on a thread pool (`mujoco.batch`), callable from jit/vmap/scan.

    Args:
        loaded: the model (a LoadedModel, so that GRF sensors can be added; a bare MjModel works
            but reports zero GRF).
        body_ids: bodies whose positions are returned, (tracked bodies,).
        nthread: threads of the batch (0 = all CPUs).
    """

    name = "cpu"

    def __init__(self, loaded: LoadedModel | mujoco.MjModel, body_ids: np.ndarray | None = None,
                 nthread: int = 0):
        if isinstance(loaded, LoadedModel):
            model, self._sens_adr, side = model_with_contact_sensors(loaded)
        else:
            model, self._sens_adr, side = loaded, np.zeros(0, int), np.zeros((2, 0))
            if any(registry.foot_geoms(model).values()):
                warnings.warn("bare MjModel given to the cpu backend: GRF will read zero", stacklevel=2)
        self.spec: PhysicsSpec = make_spec(model, body_ids)
        self.model = model
        self.nthread = int(nthread) or (os.cpu_count() or 1)
        self._side = jnp.asarray(side, jnp.float32)  # (2, sensors)
        self._batches: dict[int, mjbatch.Batch] = {}
        self._lock = threading.Lock()
        m = model
        self._sizes = dict(qpos=m.nq, qvel=m.nv, act=m.na, qacc_warmstart=m.nv, xpos=3 * len(self.spec.body_ids),
                           afrc=m.nu, alen=m.nu, avel=m.nu, sens=6 * len(self._sens_adr), bad=1)
        self._offsets = {}
        o = 0
        for k, n in self._sizes.items():
            self._offsets[k] = (o, o + n)
            o += n
        self.packed_size = o
        self._sens_cols = (self._sens_adr[:, None] + np.arange(6)[None]).reshape(-1)  # (sensors*6,)

    # ---- host side ---------------------------------------------------------------------------
    def _batch(self, n: int) -> mjbatch.Batch:
        b = self._batches.get(n)
        if b is None:
            b = mjbatch.Batch(self.model, nsim=n, nthread=min(self.nthread, n))
            comp = {k: b._component(mjbatch._STATE_FIELDS[k])  # noqa: SLF001  (offset, size)
                    for k in ("qpos", "qvel", "act", "qacc_warmstart", "ctrl", "qfrc_applied")}
            b._msd_cols = {k: slice(off, off + size) for k, (off, size) in comp.items()}
            b._msd_out = {k: b.bind(k) for k in ("xpos", "actuator_force", "actuator_length",
                                                  "actuator_velocity", "sensordata")}
            self._batches[n] = b
        return b

    def _host(self, nsub: int, qpos, qvel, act, warm, ctrl, qfrc):
        """Step (nsub > 0) or forward (nsub == 0) all simulations; inputs (..., n) float32."""
        lead = ctrl.shape[:-1]
        n = int(np.prod(lead)) if lead else 1
        ins = {"qpos": qpos, "qvel": qvel, "act": act, "qacc_warmstart": warm, "ctrl": ctrl, "qfrc_applied": qfrc}
        with self._lock:
            b = self._batch(n)
            st = b.state
            st[:, 0] = 0.0  # time
            for k, v in ins.items():
                st[:, b._msd_cols[k]] = np.reshape(v, (n, -1))
            failed = np.zeros(n, bool)
            b.warning[...] = 0  # the counters accumulate over calls; count this call's only
            try:
                if nsub > 0:
                    b.step(nstep=nsub, stage=_STAGE_VEL)
                else:
                    b.forward(stage=_STAGE_ACC)
            except mjbatch.SimulationError as e:
                failed[e.ids] = True
            # an instability warning means MuJoCo auto-reset the simulation (or zeroed a bad control)
            failed |= (b.warning[:, _BAD_WARNINGS, 1] > 0).any(axis=1)
            new = st[:, : b._msd_cols["qacc_warmstart"].stop]
            failed |= ~np.isfinite(new).all(axis=1)
            failed |= (np.abs(st[:, b._msd_cols["qpos"]]).max(axis=1) > HUGE)
            failed |= (np.abs(st[:, b._msd_cols["qvel"]]).max(axis=1) > HUGE)
            if failed.any():
                ids = np.flatnonzero(failed).astype(np.int32)
                for k, v in ins.items():  # restore the input (a state that was fine) and zero its control
                    st[ids, b._msd_cols[k]] = np.reshape(v, (n, -1))[ids]
                st[np.ix_(ids, np.arange(st.shape[1]))] = np.nan_to_num(st[ids], nan=0.0, posinf=0.0, neginf=0.0)
                st[ids, b._msd_cols["ctrl"]] = 0.0
                st[ids, b._msd_cols["qfrc_applied"]] = 0.0
                try:  # outputs of the restored state, so that observations stay meaningful
                    b.forward(ids=ids, stage=_STAGE_ACC)
                except mjbatch.SimulationError:
                    pass
            out = np.empty((n, self.packed_size), np.float32)
            c = b._msd_cols
            o = self._offsets
            out[:, slice(*o["qpos"])] = st[:, c["qpos"]]
            out[:, slice(*o["qvel"])] = st[:, c["qvel"]]
            out[:, slice(*o["act"])] = st[:, c["act"]]
            out[:, slice(*o["qacc_warmstart"])] = st[:, c["qacc_warmstart"]]
            bo = b._msd_out
            out[:, slice(*o["xpos"])] = bo["xpos"][:, self.spec.body_ids].reshape(n, -1)
            out[:, slice(*o["afrc"])] = bo["actuator_force"]
            out[:, slice(*o["alen"])] = bo["actuator_length"]
            out[:, slice(*o["avel"])] = bo["actuator_velocity"]
            if len(self._sens_cols):
                out[:, slice(*o["sens"])] = bo["sensordata"][:, self._sens_cols]
            out[:, o["bad"][0]] = failed
            if failed.any():  # never hand NaN to JAX
                np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out.reshape(*lead, self.packed_size)

    # ---- JAX side ----------------------------------------------------------------------------
    def _call(self, state: PhysicsState, ctrl, nsub: int, qfrc_applied):
        qfrc = jnp.zeros_like(state.qvel) if qfrc_applied is None else jnp.asarray(qfrc_applied, jnp.float32)
        args = (state.qpos, state.qvel, state.act, state.qacc_warmstart, jnp.asarray(ctrl, jnp.float32), qfrc)
        shape = jax.ShapeDtypeStruct((self.packed_size,), jnp.float32)
        packed = jax.pure_callback(lambda *a: self._host(nsub, *a), shape, *args, vmap_method="broadcast_all")
        return self._unpack(packed)

    def _unpack(self, p: jax.Array) -> tuple[PhysicsState, StepOutputs]:
        o = self._offsets
        g = lambda k: p[o[k][0]:o[k][1]]  # noqa: E731
        state = PhysicsState(qpos=g("qpos"), qvel=g("qvel"), act=g("act"), qacc_warmstart=g("qacc_warmstart"))
        sens = g("sens").reshape(-1, 6)  # (sensors, [force, pos])
        # the sensor reports the force body1 (foot) exerts on body2 (world): the GRF is its negative
        grf, cop = cop_from_forces(-sens[:, :3], sens[:, 3:], self._side)
        outs = StepOutputs(xpos=g("xpos").reshape(-1, 3), actuator_force=g("afrc"), actuator_length=g("alen"),
                           actuator_velocity=g("avel"), grf=grf, cop=cop, diverged=p[o["bad"][0]] > 0.5)
        return state, outs

    def step(self, state: PhysicsState, ctrl: jax.Array, nsub: int,
             qfrc_applied: jax.Array | None = None) -> tuple[PhysicsState, StepOutputs]:
        """Advance one simulation by `nsub` substeps under constant `ctrl` (nu,) (and `qfrc_applied` (nv,) N)."""
        if nsub < 1:
            raise ValueError("nsub must be >= 1")
        return self._call(state, ctrl, int(nsub), qfrc_applied)

    def forward(self, state: PhysicsState, ctrl: jax.Array | None = None) -> StepOutputs:
        """Outputs at `state` without stepping (mj_forward)."""
        ctrl = jnp.zeros(self.spec.nu, jnp.float32) if ctrl is None else ctrl
        return self._call(state, ctrl, 0, None)[1]
