"""Model registry.

Built-in models come from the `myo-sim` pip package (nothing vendored); any MJCF path also works.
`load_model` returns the compiled `mujoco.MjModel` plus what was done to load it (meshes stripped);
`summarize` gives the facts the rest of the suite needs: muscles, joints and ranges, bodies, foot
contact geoms per side, peak isometric forces and total mass.

Variants: `myolegs_sagittal` is built from myolegs' MjSpec at load time (see `sagittal_legs_spec`).
`with_options` returns a model with other simulation options (timestep, integrator, solver
iterations); `docs/PHYSICS_settings.md` has the measurements behind the defaults.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import os
import warnings
from pathlib import Path

import mujoco
import numpy as np

from msdiversity.errors import ModelError

# name -> (myo-sim name, one-line description)
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    "myoelbow": ("myoelbow", "elbow, 1 DOF, 6 muscles"),
    "myoelbow_2dof": ("myoelbow_2dof", "OpenSim arm26: shoulder elevation + elbow flexion, 6 muscles"),
    "myoarm": ("myoarm", "right arm and hand on a fixed torso, 63 muscles"),
    "myolegs": ("myolegs", "both legs on a free pelvis with passive torso, 80 muscles, foot contacts"),
    "myofullbody": ("myofullbody", "whole body on a free root, 416 muscles, foot contacts"),
    "myolegs_sagittal": ("myolegs", "myolegs in the sagittal plane: pelvis_tx/ty slides + pelvis_tilt hinge, "
                                    "hip adduction/rotation and subtalar locked, 80 muscles"),
}

# Bodies whose collidable geoms count as foot contact geoms (OpenSim-style segment names).
_FOOT_BODY_PREFIXES = ("calcn", "talus", "toes", "foot")


class ModelLoadWarning(UserWarning):
    """A model loaded only after stripping missing visual assets (meshes, textures)."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A compiled model and how it was obtained.

    Attributes:
        name: registry name, or the file stem for a user MJCF path.
        source: registry name or absolute XML path.
        model: the compiled MjModel.
        stripped_meshes: names of mesh assets removed (empty if none).
        stripped_geoms: number of mesh geoms removed.
        stripped_textures: names of textures removed because their image files are missing.
    """

    name: str
    source: str
    model: mujoco.MjModel
    stripped_meshes: tuple[str, ...] = ()
    stripped_geoms: int = 0
    stripped_textures: tuple[str, ...] = ()
    options: tuple[tuple[str, object], ...] = ()  # simulation options set by `with_options`

    @property
    def stripped_summary(self) -> str:
        """One line saying what was stripped to load the model ('' if nothing)."""
        parts = []
        if self.stripped_geoms or self.stripped_meshes:
            parts.append(f"{self.stripped_geoms} mesh geoms, {len(self.stripped_meshes)} mesh assets")
        if self.stripped_textures:
            parts.append(f"{len(self.stripped_textures)} missing textures ({', '.join(self.stripped_textures)})")
        return "stripped " + "; ".join(parts) if parts else ""


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """Static facts about a model (all SI units: m, kg, N, rad for hinge ranges)."""

    name: str
    nq: int
    nv: int
    n_dof: int  # degrees of freedom (nv)
    n_muscles: int
    n_tendons: int
    free_root: str | None  # name of the free joint, or None
    muscle_names: tuple[str, ...]
    muscle_peak_force: np.ndarray  # (muscles,) N, peak isometric force F0
    joint_names: tuple[str, ...]  # scalar (hinge/slide) joints, in qpos order
    joint_ranges: np.ndarray  # (joints, 2) rad or m; [0, 0] where unlimited
    joint_limited: np.ndarray  # (joints,) bool
    body_names: tuple[str, ...]
    foot_geoms: dict  # {"r": (...), "l": (...)} geom names
    total_mass: float  # kg
    timestep: float  # s
    keyframes: tuple[str, ...]


def list_models() -> list[str]:
    return list(BUILTIN_MODELS)


_HARMLESS_MJ_WARNINGS = ("Attaching a spec with an empty prefix",)


@contextlib.contextmanager
def _mujoco_warnings_to_python():
    """Route MuJoCo C warnings (`mju_warning`) to Python warnings while the block runs.

    MuJoCo's default handler prints them to stderr and appends them to ./MUJOCO_LOG.TXT; myo-sim's
    builders trigger the harmless "Attaching a spec with an empty prefix" warning on every load, so
    that one is dropped and any other becomes a `RuntimeWarning` (nothing is written to disk).
    """
    prev = mujoco.get_mju_user_warning()

    def handler(msg: str) -> None:
        if not msg.startswith(_HARMLESS_MJ_WARNINGS):
            warnings.warn(f"MuJoCo: {msg}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(prev)


def _quiet_compile(fn, *args, **kwargs):
    """Run a myo-sim builder or `spec.compile` without the harmless 'empty prefix' warnings
    (Python-level from myo-sim, C-level from MuJoCo) on stdout/stderr or in MUJOCO_LOG.TXT."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*empty prefix.*")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), _mujoco_warnings_to_python():
            return fn(*args, **kwargs)


def _missing_mesh_files(spec: mujoco.MjSpec, xml_dir: Path) -> list[str]:
    meshdir = Path(spec.compiler.meshdir or "")
    base = meshdir if meshdir.is_absolute() else xml_dir / meshdir
    missing = []
    for mesh in spec.meshes:
        if mesh.file and not (base / mesh.file).exists() and not Path(mesh.file).exists():
            missing.append(mesh.name or mesh.file)
    return missing


def _missing_texture_files(spec: mujoco.MjSpec, xml_dir: Path | None) -> list[str]:
    """Names of textures whose image file(s) do not exist (builtin/procedural textures never miss)."""
    if xml_dir is None:
        return []
    texdir = Path(spec.compiler.texturedir or "")
    base = texdir if texdir.is_absolute() else xml_dir / texdir
    missing = []
    for tex in spec.textures:
        files = [f for f in [tex.file, *list(tex.cubefiles)] if f]
        if any(not (base / f).exists() and not Path(f).exists() for f in files):
            missing.append(tex.name or tex.file)
    return missing


def strip_textures(spec: mujoco.MjSpec, names: list[str]) -> int:
    """Delete the named textures from `spec` and clear material references to them (visual only).

    Returns:
        number of material texture references cleared.
    """
    names_set = set(names)
    n_refs = 0
    for mat in spec.materials:
        texs = list(mat.textures)
        new = ["" if t in names_set else t for t in texs]
        if new != texs:
            n_refs += sum(t in names_set for t in texs)
            mat.textures = new
    for tex in list(spec.textures):
        if (tex.name or tex.file) in names_set:
            spec.delete(tex)
    return n_refs


def strip_meshes(spec: mujoco.MjSpec) -> tuple[list[str], int]:
    """Remove mesh geoms and mesh assets from `spec` in place, keeping every body's mass and inertia.

    Body inertias are frozen first (computed with meshes when they load, otherwise taken from
    explicit `<inertial>`), so removing visual meshes never changes the dynamics.

    Returns:
        (names of removed mesh assets, number of removed geoms)
    """
    n_geoms = 0
    for geom in list(spec.geoms):
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            spec.delete(geom)
            n_geoms += 1
    names = [m.name or m.file for m in spec.meshes]
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    return names, n_geoms


def _freeze_inertia(spec: mujoco.MjSpec, model: mujoco.MjModel) -> None:
    """Write the compiled mass/inertia of every body back into the spec as explicit inertials."""
    for i, body in enumerate(spec.bodies):
        if i == 0 or body.name == "world":
            continue
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body.name)
        if bid < 0:
            continue
        body.explicitinertial = True
        body.mass = float(model.body_mass[bid])
        body.ipos = model.body_ipos[bid].copy()
        body.iquat = model.body_iquat[bid].copy()
        body.inertia = model.body_inertia[bid].copy()
        body.fullinertia = [np.nan, 0, 0, 0, 0, 0]  # "unset": diagonal inertia + iquat win


def flat_ground(spec: mujoco.MjSpec) -> float | None:
    """Replace a raised platform of the world by the ground plane at the platform's top, in place.

    myo-sim's leg and whole-body scenes stand the model on a 1.05 m-radius disk (top at z = 0.015 m)
    above the ground plane (z = -0.4 m): a walker leaves the disk after a step or two and falls
    40 cm. This keeps every collidable plane of the world, deletes the other collidable world geoms
    (the platform) and moves the planes up to the platform's top, so a model standing on the
    platform stands on the same height with unlimited floor. Visual-only geoms are kept.

    Returns:
        the new ground height (m), or None when the world has no such platform.
    """
    world = spec.worldbody
    geoms = list(world.geoms)
    planes = [g for g in geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE and (g.contype or g.conaffinity)]
    solid = [g for g in geoms if g.type != mujoco.mjtGeom.mjGEOM_PLANE and (g.contype or g.conaffinity)]
    if not planes or not solid:
        return None
    tops = []
    for g in solid:
        half = {mujoco.mjtGeom.mjGEOM_CYLINDER: g.size[1], mujoco.mjtGeom.mjGEOM_BOX: g.size[2],
                mujoco.mjtGeom.mjGEOM_SPHERE: g.size[0]}.get(g.type)
        if half is None:  # a shape we do not reason about: leave the scene alone
            return None
        tops.append(float(g.pos[2] + half))
    top = max(tops)
    if top <= max(float(p.pos[2]) for p in planes):
        return None
    for g in solid:
        spec.delete(g)
    for p in planes:
        p.pos = [p.pos[0], p.pos[1], top]
    return top


def ground_height(model: mujoco.MjModel) -> float:
    """Height (m) of the highest collidable horizontal plane of the world (0 if there is none)."""
    zs = [float(model.geom_pos[g, 2]) for g in range(model.ngeom)
          if model.geom_bodyid[g] == 0 and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE
          and (model.geom_contype[g] or model.geom_conaffinity[g])]
    return max(zs) if zs else 0.0


def _spec_for(source: str) -> tuple[mujoco.MjSpec, str, Path | None]:
    if source in BUILTIN_MODELS:
        import myo_sim
        from myo_sim.build.keyframes import list_postures

        myo_name = BUILTIN_MODELS[source][0]
        kwargs = {"postures": True} if list_postures(myo_name) else None
        spec = _quiet_compile(myo_sim.load_spec, myo_name, build_kwargs=kwargs)
        flat_ground(spec)
        if source in _VARIANTS:
            _VARIANTS[source](spec)
        return spec, source, None
    path = Path(source).expanduser()
    if path.suffix.lower() == ".xml" or path.exists():
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        try:
            spec = mujoco.MjSpec.from_file(str(path.resolve()))
        except Exception as e:  # mujoco raises ValueError with the XML line
            raise ModelError(f"{path}: cannot parse MJCF: {e}") from None
        return spec, path.stem, path.resolve().parent
    raise ModelError(
        f"unknown model '{source}': expected one of {', '.join(BUILTIN_MODELS)} or a path to an MJCF .xml file")


def _prepared_spec(source: str, strip: str) -> tuple[mujoco.MjSpec, str, dict]:
    """The spec of `source` with missing textures removed and meshes stripped as requested.

    Returns:
        (spec, name, {'meshes': [...], 'geoms': n, 'textures': [...], 'texture_refs': n})
    """
    spec, name, xml_dir = _spec_for(source)
    info = {"meshes": [], "geoms": 0, "textures": [], "texture_refs": 0}
    missing_tex = _missing_texture_files(spec, xml_dir)
    if missing_tex:  # textures are visual only: removing them never changes the dynamics
        info["texture_refs"] = strip_textures(spec, missing_tex)
        info["textures"] = missing_tex
    missing_mesh = _missing_mesh_files(spec, xml_dir) if xml_dir is not None else []
    want_strip = strip == "yes" or (strip == "auto" and bool(missing_mesh))
    if want_strip:
        if not missing_mesh:
            # Meshes load: compile once with them so mesh-derived inertias are kept exactly.
            try:
                _freeze_inertia(spec, _quiet_compile(spec.compile))
            except Exception:
                pass
        info["meshes"], info["geoms"] = strip_meshes(spec)
    return spec, name, info


def load_spec(source: str | os.PathLike, strip_meshes: bool | None = None) -> mujoco.MjSpec:
    """A fresh, editable `mujoco.MjSpec` of a model, prepared exactly as `load_model` prepares it
    (missing textures removed, meshes stripped per `strip_meshes`). Not cached: edit freely."""
    strip = {True: "yes", False: "no", None: "auto"}[strip_meshes]
    return _prepared_spec(str(source), strip)[0]


@functools.lru_cache(maxsize=16)
def _load_cached(source: str, strip: str) -> LoadedModel:
    spec, name, info = _prepared_spec(source, strip)
    try:
        model = _quiet_compile(spec.compile)
    except Exception as e:
        raise ModelError(f"{source}: cannot compile model: {e}") from None
    src = source if source in BUILTIN_MODELS else str(Path(source).resolve())
    parts = []
    if info["meshes"] or info["geoms"]:
        parts.append(f"{info['geoms']} mesh geoms and {len(info['meshes'])} mesh assets"
                     f"{' (mesh files missing)' if strip == 'auto' else ''}")
    if info["textures"]:
        parts.append(f"{len(info['textures'])} textures with missing image files "
                     f"({', '.join(info['textures'][:5])}{', ...' if len(info['textures']) > 5 else ''}) "
                     f"and {info['texture_refs']} material references to them")
    if parts and strip == "auto":
        warnings.warn(f"{src}: stripped {' and '.join(parts)}; visual only, masses and inertias kept "
                      "where the mesh files were not needed", ModelLoadWarning, stacklevel=3)
    return LoadedModel(name=name, source=src, model=model, stripped_meshes=tuple(info["meshes"]),
                       stripped_geoms=info["geoms"], stripped_textures=tuple(info["textures"]))


def load_model(source: str | os.PathLike, strip_meshes: bool | None = None) -> LoadedModel:
    """Load a built-in model by name or any MJCF file by path.

    Args:
        source: a name from `BUILTIN_MODELS` or a path to an MJCF .xml file.
        strip_meshes: True strips visual meshes; False never does; None (default) strips them only
            when mesh files are missing. Masses and inertias are unchanged either way: a model
            whose mesh files exist is compiled with them first and its inertias frozen.

    Returns:
        LoadedModel (cached: the same source returns the same compiled model; copy before editing).
    """
    strip = {True: "yes", False: "no", None: "auto"}[strip_meshes]
    return _load_cached(str(source), strip)


def _names(model: mujoco.MjModel, obj: mujoco.mjtObj, n: int) -> tuple[str, ...]:
    return tuple(mujoco.mj_id2name(model, obj, i) or f"{obj.name.lower()[6:]}{i}" for i in range(n))


def muscle_ids(model: mujoco.MjModel) -> np.ndarray:
    """Indices of muscle actuators (gain type muscle)."""
    return np.flatnonzero(model.actuator_gaintype == mujoco.mjtGain.mjGAIN_MUSCLE)


def scalar_joint_ids(model: mujoco.MjModel) -> np.ndarray:
    """Indices of hinge and slide joints (one qpos each), in model order."""
    return np.flatnonzero(np.isin(model.jnt_type, [mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE]))


def foot_geoms(model: mujoco.MjModel) -> dict[str, tuple[str, ...]]:
    """Collidable geoms on foot bodies (calcn/talus/toes/foot), split by side suffix _r / _l."""
    out: dict[str, list[str]] = {"r": [], "l": []}
    for g in range(model.ngeom):
        if not (model.geom_contype[g] or model.geom_conaffinity[g]):
            continue
        body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.geom_bodyid[g]) or ""
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
        if not body.lower().startswith(_FOOT_BODY_PREFIXES):
            continue
        side = "r" if body.lower().endswith("_r") else "l" if body.lower().endswith("_l") else None
        if side:
            out[side].append(name)
    return {k: tuple(v) for k, v in out.items()}


def summarize(loaded: LoadedModel | mujoco.MjModel, name: str | None = None) -> ModelSummary:
    model = loaded.model if isinstance(loaded, LoadedModel) else loaded
    name = name or (loaded.name if isinstance(loaded, LoadedModel) else "model")
    mus = muscle_ids(model)
    jids = scalar_joint_ids(model)
    free = [i for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_FREE]
    jn = _names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt)
    an = _names(model, mujoco.mjtObj.mjOBJ_ACTUATOR, model.nu)
    # Muscle gainprm[2] is F0 (peak isometric force); negative means "computed by the compiler",
    # which is then stored back into gainprm[2] after compilation.
    f0 = model.actuator_gainprm[mus, 2].copy()
    return ModelSummary(
        name=name,
        nq=model.nq,
        nv=model.nv,
        n_dof=model.nv,
        n_muscles=len(mus),
        n_tendons=model.ntendon,
        free_root=jn[free[0]] if free else None,
        muscle_names=tuple(an[i] for i in mus),
        muscle_peak_force=f0,
        joint_names=tuple(jn[i] for i in jids),
        joint_ranges=model.jnt_range[jids].copy(),
        joint_limited=model.jnt_limited[jids].astype(bool),
        body_names=_names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody),
        foot_geoms=foot_geoms(model),
        total_mass=float(model.body_subtreemass[0]),
        timestep=float(model.opt.timestep),
        keyframes=_names(model, mujoco.mjtObj.mjOBJ_KEY, model.nkey),
    )


# ---- variants built from a myo-sim spec ------------------------------------------------------------

SAGITTAL_ROOT = ("pelvis_tx", "pelvis_ty", "pelvis_tilt")
SAGITTAL_LOCKED = ("hip_adduction_r", "hip_rotation_r", "subtalar_angle_r",
                   "hip_adduction_l", "hip_rotation_l", "subtalar_angle_l")
# OpenSim ground (Y up) -> MuJoCo world (Z up): x = x, y = -z, z = y. The same matrix as
# `msdiversity.motions.opensim.OPENSIM_TO_MUJOCO` (models must not import motions).
_OPENSIM_TO_MUJOCO = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _spec_refs_to_joint(spec: mujoco.MjSpec, name: str) -> list[str]:
    """What in `spec` names joint `name` directly (actuators, equalities, sensors)."""
    refs = [f"actuator {a.name}" for a in spec.actuators
            if a.trntype == mujoco.mjtTrn.mjTRN_JOINT and a.target == name]
    refs += [f"equality {e.name or '#'}" for e in spec.equalities
             if e.type == mujoco.mjtEq.mjEQ_JOINT and name in (e.name1, e.name2)]
    refs += [f"sensor {s.name}" for s in spec.sensors if s.objtype == mujoco.mjtObj.mjOBJ_JOINT and s.objname == name]
    return refs  # a fixed tendon through the joint makes the compile fail, naming it


def sagittal_legs_spec(spec: mujoco.MjSpec, root_body: str = "Full Body", pelvis: str = "pelvis",
                       locked: tuple[str, ...] = SAGITTAL_LOCKED) -> mujoco.MjSpec:
    """Turn a free-root leg model's spec into a sagittal-plane model, in place.

    - The free joint of `root_body` is replaced by three joints on the same body, in this order:
      `pelvis_tx` (slide along world +X, forward), `pelvis_ty` (slide along world +Z, up) and
      `pelvis_tilt` (hinge about the pelvis' own +Z axis, i.e. OpenSim's pelvis Z = subject's
      right, through the pelvis origin). The root body is re-oriented so that at pelvis_tilt = 0
      the pelvis carries exactly the OpenSim pelvis axes facing world +X (pelvis X forward, Y up,
      Z right = world -Y): then pelvis_tilt has OpenSim's sign (rotation about pelvis +Z; gait
      files hold ~+4..+7 deg for walking, ~-12..-21 deg for running) and a mapped motion walks
      along +X exactly like the free-root model's mapped reference.
    - The slides' `ref` is the pelvis origin's world coordinate at the spec pose, so their qpos
      *are* the pelvis origin's world x and z (m), like OpenSim's pelvis_tx / pelvis_ty;
      qpos0 and every keyframe keep the free-root model's heights (myolegs: qpos0 z = 1.0 m,
      keyframe 'standing' z = 0.9605 m, feet on the ground).
    - `locked` joints are deleted: their child bodies are welded at the joint's reference pose
      (qpos0 = 0 for myolegs: neutral hip adduction/rotation and subtalar angle). Joint equality
      constraints among the remaining joints (myolegs' coupled knee) are untouched.
    - Bodies, geoms, masses, inertias, tendons and muscles (with their explicit length ranges and
      peak forces) are unchanged; keyframes are carried over joint by joint.

    Raises:
        ModelError: when the spec has no free joint on `root_body`, no `pelvis` body, or a locked
            joint is referenced by an actuator, equality, sensor or fixed tendon.
    """
    base = _quiet_compile(spec.compile)
    fb = spec.body(root_body)
    free = [j for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_FREE]
    if fb is None or not free or free[0].parent.name != root_body:
        raise ModelError(f"sagittal variant needs a free joint on body '{root_body}'")
    fb_id = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, root_body)
    pel_id = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_BODY, pelvis)
    if pel_id < 0:
        raise ModelError(f"sagittal variant needs a '{pelvis}' body")
    for name in locked:
        refs = _spec_refs_to_joint(spec, name)
        if spec.joint(name) is None:
            raise ModelError(f"sagittal variant: no joint '{name}' to lock")
        if refs:
            raise ModelError(f"sagittal variant: cannot lock joint '{name}', used by {', '.join(refs)}")

    # pelvis pose in the root body frame (qpos0: the free joint sits at the body's spec pose)
    d = mujoco.MjData(base)
    mujoco.mj_kinematics(base, d)
    r_fb0 = d.xmat[fb_id].reshape(3, 3)
    r_pel = r_fb0.T @ d.xmat[pel_id].reshape(3, 3)  # pelvis axes in the root body frame
    t_pel = r_fb0.T @ (d.xpos[pel_id] - d.xpos[fb_id])  # pelvis origin in the root body frame
    r_new = _OPENSIM_TO_MUJOCO @ r_pel.T  # root body orientation that puts the pelvis on OpenSim axes
    q_new = np.zeros(4)
    mujoco.mju_mat2Quat(q_new, r_new.reshape(9))
    origin = d.xpos[fb_id] + r_new @ t_pel  # pelvis origin, world, at the spec pose (unchanged by the yaw)

    # keyframes, by joint name (they are re-added once the joint set has changed)
    jn = lambda m, j: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)  # noqa: E731
    free_id = mujoco.mj_name2id(base, mujoco.mjtObj.mjOBJ_JOINT, free[0].name)
    keys = []
    for k in range(base.nkey):
        qk = base.key_qpos[k]
        dk = mujoco.MjData(base)
        dk.qpos[:] = qk
        mujoco.mj_kinematics(base, dk)
        x_axis = dk.xmat[pel_id].reshape(3, 3)[:, 0]  # pelvis forward axis, world
        heading = x_axis[:2] / max(np.linalg.norm(x_axis[:2]), 1e-12)
        p = dk.xpos[pel_id]
        root = {"pelvis_tx": float(p[:2] @ heading), "pelvis_ty": float(p[2]),
                "pelvis_tilt": float(np.arctan2(x_axis[2], np.linalg.norm(x_axis[:2])))}
        scalars = {jn(base, j): float(qk[base.jnt_qposadr[j]]) for j in range(base.njnt) if j != free_id}
        keys.append(dict(name=spec.keys[k].name, time=float(base.key_time[k]), values={**scalars, **root},
                         act=base.key_act[k].copy(), ctrl=base.key_ctrl[k].copy()))
    for key in list(spec.keys):
        spec.delete(key)

    spec.delete(free[0])
    for name in locked:
        spec.delete(spec.joint(name))
    fb.quat = q_new
    ex, ez = r_new.T @ np.array([1.0, 0, 0]), r_new.T @ np.array([0, 0, 1.0])  # world X, Z in the body frame
    common = dict(armature=0.0, damping=[0.0, 0.0, 0.0], stiffness=[0.0, 0.0, 0.0], frictionloss=0.0,
                  limited=mujoco.mjtLimited.mjLIMITED_FALSE, range=[0.0, 0.0])
    fb.add_joint(name="pelvis_tx", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=ex, ref=float(origin[0]), **common)
    fb.add_joint(name="pelvis_ty", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=ez, ref=float(origin[2]), **common)
    fb.add_joint(name="pelvis_tilt", type=mujoco.mjtJoint.mjJNT_HINGE, axis=r_pel[:, 2], pos=t_pel, ref=0.0,
                 **common)

    new = _quiet_compile(spec.compile)
    for key in keys:
        qpos = new.qpos0.copy()
        for j in range(new.njnt):
            name = jn(new, j)
            if name in key["values"]:
                qpos[new.jnt_qposadr[j]] = key["values"][name]
        spec.add_key(name=key["name"], time=key["time"], qpos=qpos, qvel=np.zeros(new.nv), act=key["act"],
                     ctrl=key["ctrl"])
    return spec


_VARIANTS = {"myolegs_sagittal": sagittal_legs_spec}


# ---- simulation options ------------------------------------------------------------------------------

INTEGRATORS = {"euler": mujoco.mjtIntegrator.mjINT_EULER, "rk4": mujoco.mjtIntegrator.mjINT_RK4,
               "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
               "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST}
SOLVERS = {"pgs": mujoco.mjtSolver.mjSOL_PGS, "cg": mujoco.mjtSolver.mjSOL_CG,
           "newton": mujoco.mjtSolver.mjSOL_NEWTON}
_OPTION_FIELDS = ("timestep", "integrator", "solver", "iterations", "ls_iterations", "tolerance",
                  "noslip_iterations")


def _enum(value, table: dict, what: str) -> int:
    if isinstance(value, str):
        key = value.strip().lower()
        if key not in table:
            raise ModelError(f"unknown {what} {value!r}; expected one of {', '.join(table)}")
        return int(table[key])
    v = int(value)
    if v not in {int(x) for x in table.values()}:
        raise ModelError(f"unknown {what} {value!r}; expected one of {', '.join(table)}")
    return v


def _checked_options(options: dict) -> dict:
    """Validated {field: value} with enums as ints; None values dropped."""
    out = {}
    for k, v in options.items():
        if v is None:
            continue
        if k not in _OPTION_FIELDS:
            raise ModelError(f"unknown simulation option {k!r}; expected one of {', '.join(_OPTION_FIELDS)}")
        if k == "integrator":
            v = _enum(v, INTEGRATORS, "integrator")
        elif k == "solver":
            v = _enum(v, SOLVERS, "solver")
        elif k in ("timestep", "tolerance"):
            v = float(v)
            if not (np.isfinite(v) and (v > 0 if k == "timestep" else v >= 0)):
                raise ModelError(f"simulation option {k} must be {'> 0' if k == 'timestep' else '>= 0'}, got {v}")
        else:
            v = int(v)
            if v < (1 if k == "iterations" else 0):
                raise ModelError(f"simulation option {k} must be >= {1 if k == 'iterations' else 0}, got {v}")
        out[k] = v
    return out


def apply_options(model: mujoco.MjModel, options) -> mujoco.MjModel:
    """Set simulation options on `model.opt` in place (a dict or `LoadedModel.options`); returns it."""
    for k, v in _checked_options(dict(options)).items():
        setattr(model.opt, k, v)
    return model


def with_options(loaded: LoadedModel, *, timestep: float | None = None, integrator: str | int | None = None,
                 solver: str | int | None = None, iterations: int | None = None,
                 ls_iterations: int | None = None, tolerance: float | None = None,
                 noslip_iterations: int | None = None) -> LoadedModel:
    """A `LoadedModel` like `loaded` whose `.model` is a copy with other simulation options.

    Args:
        loaded: from `load_model` (never modified: `load_model` caches it).
        timestep: s per MuJoCo step (`opt.timestep`).
        integrator: 'euler' | 'implicitfast' | 'implicit' | 'rk4' (or the mjtIntegrator value).
        solver: 'newton' | 'cg' | 'pgs'.
        iterations, ls_iterations: constraint solver (and line search) iteration caps.
        tolerance: solver tolerance (0 = always run `iterations`).
        noslip_iterations: extra no-slip iterations (0 = off).
        Options left at None keep the model's value.

    Returns:
        LoadedModel with `.options` listing what was set (merged over `loaded.options`); the cpu
        physics backend re-applies them to the model it recompiles with GRF sensors.

    Raises:
        ModelError: an unknown integrator/solver name or an out-of-range value.
    """
    new = _checked_options(dict(timestep=timestep, integrator=integrator, solver=solver, iterations=iterations,
                                ls_iterations=ls_iterations, tolerance=tolerance,
                                noslip_iterations=noslip_iterations))
    merged = {**dict(loaded.options), **new}
    model = apply_options(copy.copy(loaded.model), merged)
    return dataclasses.replace(loaded, model=model, options=tuple(sorted(merged.items())))
