"""Specificity: how exactly each member reproduces the reference kinematics and GRF.

Computed on trial 0 (the deterministic policy) over the frames where the member is alive.
- `spec_joint_rmse_deg`: sqrt(mean over frames and tracked hinge joints of (q - q_ref)²), degrees;
  hinge errors are wrapped to ±180° (a whole turn is the same pose), and the root's hinge
  coordinates (planar roots: the trunk orientation, which the tracking reward scores as root
  orientation rather than as a joint) are included. `spec_root_rmse_deg` is that root part alone.
  A free root's orientation is not in the recording (scalar joints only) and cannot enter.
- `spec_body_err_cm`: mean over frames and bodies of |x_body - x_body_ref| (Euclidean), cm.
- `spec_grf_rmse_axis_pct_bw` (member, axis): sqrt(mean over frames and feet of (F - F_target)²)
  / (m g) × 100 per force component; `spec_grf_vertical_rmse_pct_bw` is the vertical one and
  `spec_grf_rmse_pct_bw` the largest (worst) component, so that one bad component is not diluted by
  five good ones. F_target is the reference GRF when the recording has it, otherwise the mean of
  the *other* members (leave-one-out: a member is never compared with a target containing itself).
- `spec_grf_corr`: mean over the (foot, axis) channels whose target SD exceeds 1 % BW of the
  Pearson correlation over frames between F and F_target.
- spreads: SD across members (ddof=1) of trial-0 joint angles / GRF at each phase sample.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from msdiversity.analysis.prep import Prepared, body_weight_n, wrap_to_reference

GRF_CHANNEL_MIN_SD_PCT_BW = 1.0


def _nan_corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def joint_is_root(rec: xr.Dataset) -> np.ndarray:
    """(joint,) bool: scalar joints of the body attached to the world (a planar root). From coord
    `joint_is_root`, else from the model when it loads, else all False."""
    if "joint_is_root" in rec.coords or "joint_is_root" in rec:
        return np.asarray(rec["joint_is_root"].values, bool)
    names = [str(j) for j in rec["joint"].values]
    try:
        import mujoco

        from msdiversity.models import load_model

        m = load_model(rec.attrs["model"]).model
        ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
        return np.array([j >= 0 and m.body_parentid[m.jnt_bodyid[j]] == 0 for j in ids], bool)
    except Exception:  # no model (synthetic recordings): no root joints known
        return np.zeros(len(names), bool)


def vertical_axis(rec: xr.Dataset) -> int:
    """Index of the vertical axis: the largest component of attr `gravity_vector` (default z)."""
    import json

    g = rec.attrs.get("gravity_vector")
    try:
        return int(np.argmax(np.abs(np.asarray(json.loads(g), float)))) if g else 2
    except (TypeError, ValueError):
        return 2


def loo_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the other members along axis 0 (NaN-aware): x (M, ...) -> (M, ...)."""
    fin = np.isfinite(x)
    tot, cnt = np.where(fin, x, 0.0).sum(0), fin.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (tot[None] - np.where(fin, x, 0.0)) / (cnt[None] - fin)


def specificity(rec: xr.Dataset, prep: Prepared) -> xr.Dataset:
    members = rec["member"].values
    M = len(members)
    alive0 = (np.asarray(rec["alive"].values, bool)[:, 0] if "alive" in rec
              else np.ones((M, rec.sizes["time"]), bool))  # (M, T)
    tracked, is_rot = prep.tracked, prep.is_rot
    root = joint_is_root(rec) & is_rot
    hinge = (tracked | root) & is_rot
    q = np.asarray(rec["qpos"].values, float)[:, 0]  # (M, T, J)
    qref = np.asarray(rec["qpos_ref"].values, float)  # (T, J)
    err_deg = np.rad2deg(wrap_to_reference(q, qref, is_rot) - qref[None])  # (M, T, J)
    err_deg = np.where(alive0[..., None], err_deg, np.nan)
    per_joint = np.sqrt(np.nanmean(err_deg ** 2, axis=1))  # (M, J)
    per_joint[:, ~is_rot] = np.nan
    joint_rmse = (np.sqrt(np.nanmean(err_deg[..., hinge] ** 2, axis=(1, 2))) if hinge.any()
                  else np.full(M, np.nan))
    with np.errstate(invalid="ignore"):
        root_rmse = (np.sqrt(np.nanmean(err_deg[..., root] ** 2, axis=(1, 2))) if root.any()
                     else np.full(M, np.nan))
    out = xr.Dataset(coords={"member": members, "joint": rec["joint"].values, "phase": prep.phase})
    out["spec_root_rmse_deg"] = ("member", root_rmse, {
        "units": "deg", "long_name": "RMSE of the root's hinge coordinates (planar root orientation); NaN: none recorded"})
    out["spec_alive_fraction"] = ("member", alive0.mean(axis=1), {
        "units": "1", "long_name": "fraction of the recording the deterministic trial is alive (not fallen)"})
    out["spec_joint_rmse_deg"] = ("member", joint_rmse, {
        "units": "deg", "long_name": "joint-angle RMSE vs reference over the frames the member is alive (a member that "
                                     "falls early is no match: see spec_alive_fraction / spec_matched)"})
    out["spec_joint_rmse_per_joint_deg"] = (("member", "joint"), per_joint,
                                            {"units": "deg", "long_name": "joint-angle RMSE per joint"})
    if "body_pos" in rec and "body_pos_ref" in rec:
        bp = np.asarray(rec["body_pos"].values, float)[:, 0]  # (M, T, B, 3)
        d = np.linalg.norm(bp - np.asarray(rec["body_pos_ref"].values, float)[None], axis=-1)  # (M, T, B)
        d = np.where(alive0[..., None], d, np.nan)
        body = np.nanmean(d, axis=(1, 2)) * 100.0
    else:
        body = np.full(M, np.nan)
    out["spec_body_err_cm"] = ("member", body, {"units": "cm", "long_name": "mean body-position error"})

    grf_src = "none"
    rmse = np.full(M, np.nan)
    corr = np.full(M, np.nan)
    if "grf" in rec:
        bw = body_weight_n(rec)
        g = np.asarray(rec["grf"].values, float)[:, 0] / bw * 100  # (M, T, 2, 3) % BW
        g = np.where(alive0[..., None, None], g, np.nan)
        if "grf_ref" in rec and np.all(np.isfinite(rec["grf_ref"].values)):
            target = np.broadcast_to(np.asarray(rec["grf_ref"].values, float)[None] / bw * 100, g.shape)
            grf_src = "reference"
        else:
            target = loo_mean(g)
            grf_src = "ensemble_mean"
        with np.errstate(invalid="ignore"):
            rmse_axis = np.sqrt(np.nanmean((g - target) ** 2, axis=(1, 2)))  # (M, axis)
        rmse = np.max(rmse_axis, axis=1)
        vz = vertical_axis(rec)
        out["spec_grf_rmse_axis_pct_bw"] = (("member", "axis"), rmse_axis, {
            "units": "% body weight", "long_name": "GRF RMSE per force component (both feet)", "grf_reference": grf_src})
        out["spec_grf_vertical_rmse_pct_bw"] = ("member", rmse_axis[:, vz], {
            "units": "% body weight", "long_name": "vertical GRF RMSE", "grf_reference": grf_src})
        for m in range(M):
            rs = [_nan_corr(g[m, :, f, a], target[m, :, f, a]) for f in range(g.shape[2]) for a in range(3)
                  if np.nanstd(target[m, :, f, a]) > GRF_CHANNEL_MIN_SD_PCT_BW]
            rs = [r for r in rs if np.isfinite(r)]
            corr[m] = np.mean(rs) if rs else np.nan
    out["spec_grf_rmse_pct_bw"] = ("member", rmse, {"units": "% body weight",
                                                    "long_name": "GRF RMSE of the worst force component",
                                                    "grf_reference": grf_src})
    out["spec_grf_corr"] = ("member", corr, {"units": "1", "long_name": "mean GRF channel correlation",
                                             "grf_reference": grf_src})

    # Spread between members at each phase sample (trial 0).
    kin0 = prep.kin[:, 0]  # (M, P, Jx) deg/cm
    spread = np.full((len(prep.phase), len(rec["joint"])), np.nan)
    spread[:, tracked] = np.nanstd(kin0, axis=0, ddof=1)
    spread[:, ~is_rot] = np.nan
    out["spec_kin_spread_deg"] = (("phase", "joint"), spread,
                                  {"units": "deg", "long_name": "SD of joint angle across members"})
    out["spec_kin_spread_mean_deg"] = ((), float(np.nanmean(spread)) if np.isfinite(spread).any() else np.nan,
                                       {"units": "deg"})
    qm = np.full((len(prep.phase), len(rec["joint"])), np.nan)
    qm[:, tracked] = np.nanmean(kin0, axis=0)
    qr = np.full_like(qm, np.nan)
    qr[:, tracked] = prep.kin_ref
    unit = np.where(is_rot, np.pi / 180, 0.01)
    out["spec_qpos_mean"] = (("phase", "joint"), qm * unit, {"units": "rad or m", "long_name": "ensemble-mean qpos"})
    out["spec_qpos_ref"] = (("phase", "joint"), qr * unit, {"units": "rad or m", "long_name": "reference qpos"})
    if prep.grf is not None:
        out = out.assign_coords(foot=rec["foot"].values, axis=rec["axis"].values)
        gs = np.nanstd(prep.grf[:, 0], axis=0, ddof=1)  # (P, 2, 3)
        out["spec_grf_spread_pct_bw"] = (("phase", "foot", "axis"), gs,
                                         {"units": "% body weight", "long_name": "SD of GRF across members"})
        out["spec_grf_spread_mean_pct_bw"] = ((), float(np.nanmean(gs)), {"units": "% body weight"})
        out["spec_grf_mean_pct_bw"] = (("phase", "foot", "axis"), np.nanmean(prep.grf[:, 0], axis=0),
                                       {"units": "% body weight", "long_name": "ensemble-mean GRF"})
        if prep.grf_ref is not None:
            out["spec_grf_ref_pct_bw"] = (("phase", "foot", "axis"), prep.grf_ref,
                                          {"units": "% body weight", "long_name": "reference GRF"})
    else:
        out["spec_grf_spread_mean_pct_bw"] = ((), np.nan, {"units": "% body weight"})
    out.attrs["grf_reference"] = grf_src
    return out
