"""EMG input, envelopes, channel mapping, gait events / % gait cycle, classical and EMG comparisons.

Planted truths: a carrier with a known envelope, a synthetic GRF with known strikes, a planted myolegs
recording built from the real Rajagopal CMC activations. Real files from ../shared/data/opensim
(skipped, with the reason, when absent).
"""

from __future__ import annotations

import numpy as np
import pytest

from msdiversity.emg import (EnvelopeConfig, envelope, linear_envelope, map_channels, read_emg)
from msdiversity.errors import ConfigError, InputError

DATA = __import__("pathlib").Path(__file__).parents[2] / "shared" / "data" / "opensim"
ANC = DATA / "rajagopal_walk_emg_raw.anc"
WALK_GRF = DATA / "rajagopal_walk_grf.mot"
CMC = DATA / "rajagopal_subject01_run_cmc_states.sto"
need_data = pytest.mark.skipif(not (ANC.exists() and WALK_GRF.exists() and CMC.exists()),
                               reason=f"Rajagopal EMG/GRF/CMC files not found in {DATA}")


# ---------------------------------------------------------------------------------------------
# Envelope chain
# ---------------------------------------------------------------------------------------------

def test_envelope_recovers_planted_envelope_without_lag():
    """x = e(t) sin(2 pi 150 t) + DC offset + 1 Hz drift (A/D counts). |sin| has mean 2/pi and ripple at
    300 Hz and above, which the 4 Hz low-pass removes, so after normalisation to the maximum the chain
    must return e / max e (up to the low-pass's smoothing of e itself). A noisy carrier
    (band-limited Gaussian, E|x| = sigma sqrt(2/pi) e) must give the same shape within its noise."""
    from scipy.signal import butter, sosfiltfilt

    rate = 2000.0
    t = np.arange(0, 4.0, 1 / rate)
    e = 0.2 + np.clip(np.sin(2 * np.pi * 0.5 * t), 0, None) ** 2  # bursts on a 0.2 tonic floor
    drift = 500.0 + 80.0 * np.sin(2 * np.pi * 1.0 * t)
    cfg = EnvelopeConfig(lowpass_hz=4.0)
    core = slice(int(0.25 * rate), int(-0.25 * rate))  # filtfilt edge transients
    truth = e / e[core].max()
    est = linear_envelope(drift + 300.0 * e * np.sin(2 * np.pi * 150 * t), rate, cfg)
    est = est / est[core].max()
    assert np.max(np.abs(est[core] - truth[core])) < 0.03
    # zero lag: the cross-correlation of the mean-removed curves peaks within 2 ms
    a, b = est[core] - est[core].mean(), truth[core] - truth[core].mean()
    lags = np.arange(-100, 101)
    xc = [np.dot(a[max(0, k):len(a) + min(0, k)], b[max(0, -k):len(b) - max(0, k)]) for k in lags]
    assert abs(lags[int(np.argmax(xc))]) / rate <= 0.002
    noise = sosfiltfilt(butter(4, [40 / 1000, 300 / 1000], "bandpass", output="sos"),
                        np.random.default_rng(0).standard_normal(t.size))
    noisy = linear_envelope(drift + 300.0 * e * noise / noise.std(), rate, cfg)[core]
    s = noisy @ truth[core] / (noisy @ noisy)  # least-squares amplitude
    assert np.corrcoef(noisy, truth[core])[0, 1] > 0.98 and np.sqrt(np.mean((s * noisy - truth[core]) ** 2)) < 0.06
    # the steps are configurable: without the high-pass the 1 Hz drift leaks into the envelope
    leak = linear_envelope(drift + 300.0 * e * np.sin(2 * np.pi * 150 * t), rate,
                           EnvelopeConfig(lowpass_hz=4.0, highpass_hz=0.0, bandpass_high_hz=None))[core]
    assert np.max(np.abs(leak / leak.max() - truth[core])) > 0.1  # vs < 0.03 with the high-pass


def test_normalisation_max_mvc_and_envelope_files(tmp_path):
    p = tmp_path / "env.csv"
    t = np.arange(0, 1, 0.01)
    np.savetxt(p, np.c_[t, 2 * np.ones_like(t) + t, 4 * t], delimiter=",", header="time,SOL,TA", comments="")
    rec = read_emg(p)
    assert rec.is_envelope and rec.rate == pytest.approx(100.0)  # no negative values: taken as envelopes
    env = envelope(rec)
    np.testing.assert_allclose(env.data.max(0), 1.0)
    np.testing.assert_allclose(env.data[:, 0], (2 + t) / (2 + t).max())  # passed through, only normalised
    mvc = envelope(rec, EnvelopeConfig(normalise="mvc", mvc={"SOL": 6.0, "TA": 8.0}))
    np.testing.assert_allclose(mvc.data[-1], [(2 + t[-1]) / 6.0, 4 * t[-1] / 8.0])
    with pytest.raises(InputError, match="missing TA"):
        envelope(rec, EnvelopeConfig(normalise="mvc", mvc={"SOL": 6.0}))


# ---------------------------------------------------------------------------------------------
# Readers and bad files
# ---------------------------------------------------------------------------------------------

ANC_HEAD = ("File_Type:\tAnalog R/C ASCII\tGeneration#:\t2\nTrial_Name:\tx\tTrial#:\t1\tDuration(Sec.):\t0.002\t"
            "#Channels:\t3\nBitDepth:\t16\tPreciseRate:\t{rate}\n\n\nName\tF1Z\tSOL\tTA\t\nRate\t{r1}\t{r2}\t{r2}\t\n"
            "Range\t5000\t2500\t2500\t\n")


def _anc(tmp_path, rows: str, rate="2000.000000", r1=2000, r2=2000):
    p = tmp_path / "t.anc"
    p.write_text(ANC_HEAD.format(rate=rate, r1=r1, r2=r2) + rows)
    return p


ROWS = "".join(f"{i * 0.0005:.6f}\t{i}\t{(-1) ** i * 10}\t{i % 3 - 1}\t\n" for i in range(40))


def test_anc_reader_and_force_plate_channels(tmp_path):
    rec = read_emg(_anc(tmp_path, ROWS))
    assert rec.channels == ("SOL", "TA") and "F1Z" in rec.analog and rec.rate == 2000.0
    assert not rec.is_envelope and rec.data.shape == (40, 2)


def test_bad_emg_files_give_one_clear_error(tmp_path):
    lines = ROWS.splitlines(keepends=True)
    # truncated: the last row lost a cell
    p = _anc(tmp_path, "".join(lines[:-1]) + "0.019500\t39\t-10\n")
    with pytest.raises(InputError, match=r"t\.anc:48: row has 3 values, expected 4"):
        read_emg(p)
    # non-numeric cell, named by its channel
    p = _anc(tmp_path, "".join(lines[:5]) + "0.002500\t5\tx12\t0\t\n" + "".join(lines[6:]))
    with pytest.raises(InputError, match=r"t\.anc:14: field 'SOL': non-numeric value 'x12'"):
        read_emg(p)
    # mismatched rates: one channel at another rate; Rate row vs the time column; header vs Rate row
    with pytest.raises(InputError, match=r"field 'F1Z': channel 'F1Z' is sampled at 1000 Hz"):
        read_emg(_anc(tmp_path, ROWS, r1=1000))
    with pytest.raises(InputError, match=r"stated rate 1000 Hz disagrees with the time column \(2000 Hz\)"):
        read_emg(_anc(tmp_path, ROWS, rate="1000.000000", r1=1000, r2=1000))
    with pytest.raises(InputError, match=r"PreciseRate 1000 Hz disagrees"):
        read_emg(_anc(tmp_path, ROWS, rate="1000.000000"))
    # a missing sample (non-uniform time) and a missing Rate row
    p = _anc(tmp_path, "".join(lines[:10] + lines[11:]))
    with pytest.raises(InputError, match=r"t\.anc:19: field 'time': non-uniform sampling"):
        read_emg(p)
    p = tmp_path / "norate.anc"
    p.write_text("Name\tSOL\nRange\t1\n0\t1\n")
    with pytest.raises(InputError, match="no 'Rate' row"):
        read_emg(p)
    # CSV: no time column; ragged row; unknown format; envelope claimed for a raw file
    c = tmp_path / "a.csv"
    c.write_text("t_ms,SOL\n0,1\n")
    with pytest.raises(InputError, match=r"a\.csv:1: field 'time': first column is 't_ms', expected 'time'"):
        read_emg(c)
    c.write_text("time,SOL,TA\n0,1,2\n0.01,1\n")
    with pytest.raises(InputError, match=r"a\.csv:3: row has 2 values, expected 3"):
        read_emg(c)
    with pytest.raises(InputError, match="unknown EMG format '.txt'"):
        (tmp_path / "e.txt").write_text("x")
        read_emg(tmp_path / "e.txt")
    with pytest.raises(InputError, match="field 'SOL': kind='envelope' but the channel has negative values"):
        read_emg(_anc(tmp_path, ROWS), kind="envelope")


@need_data
def test_real_anc_maps_onto_myolegs():
    from msdiversity.emg import model_muscle_names

    rec = read_emg(ANC)
    assert rec.channels == ("SOL", "GAS", "TA", "MH", "BF", "VL", "VM", "RF", "GMAX", "GMED")
    assert rec.rate == 2000.0 and rec.duration == pytest.approx(2.3895, abs=1e-3) and not rec.is_envelope
    mp = map_channels(rec.channels, model_muscle_names("myolegs"), side="r", model="myolegs")
    mus = mp.channel_muscles
    assert len(mp.matched) == 10 and not mp.unmatched
    assert mus["GAS"] == ("gasmed_r", "gaslat_r") and mus["GMAX"] == ("glmax1_r", "glmax2_r", "glmax3_r")
    left = map_channels(rec.channels, model_muscle_names("myolegs"), side="l", model="myolegs",
                        overrides={"RF": "", "SOL": "soleus_l+tibpost_l"})
    assert left.channel_muscles["TA"] == ("tibant_l",) and left.channel_muscles["SOL"] == ("soleus_l", "tibpost_l")
    assert ("RF", "dropped by override") in left.unmatched
    with pytest.raises(InputError, match="not a muscle of myolegs"):
        map_channels(rec.channels, model_muscle_names("myolegs"), overrides={"TA": "tibialis"}, model="myolegs")


def test_side_tags_in_channel_labels():
    muscles = ["soleus_r", "soleus_l", "tibant_l"]
    mp = map_channels(["R_SOL", "SOL left", "LTA", "XYZ"], muscles, side="r")
    assert mp.channel_muscles == {"R_SOL": ("soleus_r",), "SOL left": ("soleus_l",)}
    assert [c for c, _ in mp.unmatched] == ["LTA", "XYZ"]  # 'LTA' has no separator: read as a label


# ---------------------------------------------------------------------------------------------
# Gait events and % gait cycle
# ---------------------------------------------------------------------------------------------

def test_events_and_gait_cycle_on_synthetic_grf():
    """Right stances [0.10, 0.75], [1.30, 1.90] (cycle 1.20 s), [2.45, 3.10] (cycle 1.15 s): half-sine
    forces with noise, a 30 ms spike (shorter than the minimum stance) and a 40 ms dip inside a stance
    (shorter than the minimum swing)."""
    from msdiversity.analysis.gaitcycle import gait_cycles, to_gait_cycle
    from msdiversity.motions.gait import MIN_STANCE_S, MIN_SWING_S, gait_events

    dt = 0.001
    t = np.arange(0, 3.3, dt)
    fz = np.zeros_like(t)
    stances = [(0.10, 0.75), (1.30, 1.90), (2.45, 3.10)]
    for a, b in stances:
        on = (t >= a) & (t <= b)
        fz[on] = 900 * np.sin(np.pi * (t[on] - a) / (b - a)) ** 0.5
    fz[(t > 1.0) & (t < 1.03)] = 300.0  # spike
    fz[(t > 1.60) & (t < 1.64)] = 0.0  # dip
    fz += np.random.default_rng(1).normal(0, 2.0, t.size)
    grf = np.zeros((t.size, 2, 3))
    grf[:, 0, 2] = fz
    assert MIN_STANCE_S > 0.03 and MIN_SWING_S > 0.04
    ev = gait_events(grf, dt)
    np.testing.assert_allclose(ev["r"]["heel_strike"], [a for a, _ in stances], atol=0.01)
    np.testing.assert_allclose(ev["r"]["toe_off"], [b for _, b in stances], atol=0.01)
    cyc = gait_cycles(ev)
    assert cyc.foot == "r" and cyc.n == 2
    assert cyc.toe_off_pct == pytest.approx(100 * np.mean([0.65 / 1.20, 0.60 / 1.15]), abs=1.5)
    # a signal locked to the cycle maps onto the same curve in both cycles of different lengths
    hs = ev["r"]["heel_strike"]
    phase = np.where(t < hs[1], (t - hs[0]) / (hs[1] - hs[0]), (t - hs[1]) / (hs[2] - hs[1]))
    x = np.sin(2 * np.pi * phase)[:, None]
    y = to_gait_cycle(x, t, 0, cyc.windows, 101)
    np.testing.assert_allclose(y[:, 0], np.sin(2 * np.pi * np.linspace(0, 1, 101)), atol=0.01)


@need_data
def test_real_walk_heel_strikes_and_cli(capsys):
    from msdiversity.cli import main

    rc = main(["emg", "inspect", str(ANC), "--model", "myolegs", "--grf", str(WALK_GRF)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "10 EMG channels, 2000 Hz" in out and "gasmed_r, gaslat_r" in out and "glmed1_r, glmed2_r, glmed3_r" in out
    assert "10 of 10 channels matched" in out
    row = next(ln for ln in out.splitlines() if ln.strip("│ ").startswith("r "))
    strikes = [float(x) for x in row.split("│")[2].split(",")]
    np.testing.assert_allclose(strikes, [0.248, 1.3925], atol=0.010)  # OpenSim's EMG script's times


# ---------------------------------------------------------------------------------------------
# Comparison with classical solutions and EMG
# ---------------------------------------------------------------------------------------------

@need_data
def test_cmc_maps_80_of_80_and_members_match_it_over_the_gait_cycle():
    from msdiversity.analysis.external import ExternalConfig, compare_external, read_classical
    from msdiversity.analysis.planted_gait import planted_myolegs_recording
    from msdiversity.analysis.prep import prepare
    from msdiversity.emg import model_muscle_names

    sol = read_classical(CMC, model_muscle_names("myolegs"))
    assert len(sol.matched) == 80 and sol.activation.shape == (457, 80) and not sol.unmatched_file
    rec = planted_myolegs_recording(DATA, n_members=3)
    prep = prepare(rec)
    assert prep.cycles is not None and prep.cycles.n == 1 and prep.phase_note.startswith("% gait cycle")
    # right heel strikes of the running trial at 0.862 and 1.546 s (recording starts at ref_t0 = 0.8 s)
    np.testing.assert_allclose(prep.cycles.windows[0] + rec.attrs["ref_t0"], [0.862, 1.546], atol=0.011)
    ext = compare_external(rec, prep, ExternalConfig(classical=(str(CMC),), emg=str(ANC), emg_grf=str(WALK_GRF)))
    assert int(ext["cmp_cls_mapped"].sum()) == 80 and "80 of 80 muscles" in ext.attrs["cmp_classical"]
    # planted: members = CMC x smooth gain -> high r over the CMC span (0.87-1.13 s = ~1-48 % of the cycle)
    assert np.nanmedian(ext["cmp_cls_r"].values) > 0.8
    covered = np.isfinite(ext["cmp_cls_activation"].values[0, :, 0])
    assert 0.3 < covered.mean() < 0.5
    # EMG of the walking trial: a normative comparison, labelled so, over its own cycle
    assert ext.attrs["cmp_emg_comparison"].startswith("normative")
    assert "0.2475-1.392 s" in ext.attrs["cmp_emg_phase"]
    assert list(ext["emg_channel"].values)[:3] == ["SOL", "GAS", "TA"]
    assert ext["cmp_emg_envelope"].shape == (101, 10) and np.nanmax(ext["cmp_emg_envelope"].values) <= 1.0
    r = ext["cmp_emg_r"].values
    assert np.all((r >= -1) & (r <= 1))


def test_metrics_hand_derived():
    from msdiversity.analysis.external import corr, onoff_agreement, scaled_rmse

    e = np.array([0.0, 0.5, 1.0, 0.5, 0.0])
    a = 0.4 * e
    assert corr(a, e) == pytest.approx(1.0)
    assert scaled_rmse(a, e) == pytest.approx(0.0, abs=1e-12)  # amplitude scaled away
    assert scaled_rmse(a, e, scale=False) == pytest.approx(np.sqrt(np.mean((0.6 * e) ** 2)))
    # on = above 25 % of own max: e on at [1, 2, 3]; b on at [2, 3, 4] -> agree on 0, 2, 3 = 3 of 5
    b = np.array([0.0, 0.1, 1.0, 1.0, 1.0])
    assert onoff_agreement(b, e, 0.25) == pytest.approx(3 / 5)


# ---------------------------------------------------------------------------------------------
# EMG in training: [motion] emg -> reference envelopes -> emg_weight regularizer
# ---------------------------------------------------------------------------------------------

def _emg_exp(tmp_path, motion_extra: dict):
    from msdiversity.config import experiment_from_dict

    return experiment_from_dict({"name": "e", "model": {"name": "myoelbow_2dof"},
                                 "motion": {"source": "synthetic", "seed": 0, "duration": 1.0, **motion_extra},
                                 "env": {"backend": "cpu"}})


def test_motion_emg_attaches_envelopes_for_the_regularizer(tmp_path):
    import jax.numpy as jnp

    from msdiversity.ensemble.build import build_env
    from msdiversity.learning.regularizers import emg_tracking

    tt = np.arange(0, 1.5001, 0.001)
    bic = 0.5 + 0.4 * np.sin(2 * np.pi * tt)
    np.savetxt(tmp_path / "emg.csv", np.c_[tt, bic, 1.0 - 0.5 * tt], delimiter=",", header="time,BIC,TRIlong",
               comments="")
    b = build_env(_emg_exp(tmp_path, {"emg": str(tmp_path / "emg.csv"), "emg_mapping": {"BIC": "BIClong+BICshort"}}))
    names = list(b.env.muscle_names)
    emg = b.env.ref_emg  # (T, nu) on the control grid, NaN = no EMG
    t = np.arange(emg.shape[0]) * b.env.dt
    for m in ("BIClong", "BICshort"):
        np.testing.assert_allclose(emg[:, names.index(m)], np.interp(t, tt, bic) / bic.max(), atol=1e-6)
    np.testing.assert_allclose(emg[:, names.index("TRIlong")], 1.0 - 0.5 * t, atol=1e-6)  # max 1 at t = 0
    assert np.all(np.isnan(emg[:, [names.index(m) for m in ("TRIlat", "TRImed", "BRA")]]))
    act = np.full(len(names), 0.3)
    want = np.mean([(0.3 - emg[10, names.index(m)]) ** 2 for m in ("BIClong", "BICshort", "TRIlong")])
    assert float(emg_tracking(jnp.asarray(act), jnp.asarray(emg[10]))) == pytest.approx(want, rel=1e-5)
    # an EMG that does not overlap the motion in time is refused, naming the key
    with pytest.raises(ConfigError, match=r"field 'motion.emg': .*no overlap"):
        build_env(_emg_exp(tmp_path, {"emg": str(tmp_path / "emg.csv"), "emg_offset_s": 5.0}))


def test_c3d_analog_channels(tmp_path):
    ezc3d = pytest.importorskip("ezc3d", reason="optional: pip install -e .[c3d]")
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100]
    c["parameters"]["POINT"]["LABELS"]["value"] = ("m1",)
    c["parameters"]["ANALOG"]["RATE"]["value"] = [1000]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ("F1Z", "SOL", "TA")
    pts = np.ones((4, 1, 10))
    c["data"]["points"] = pts
    an = np.zeros((1, 3, 100))
    an[0, 1] = np.sin(np.arange(100))
    an[0, 2] = np.arange(100) * 0.5
    c["data"]["analogs"] = an
    c.write(str(tmp_path / "t.c3d"))
    rec = read_emg(tmp_path / "t.c3d")
    assert rec.channels == ("SOL", "TA") and "F1Z" in rec.analog and rec.rate == 1000.0
    np.testing.assert_allclose(rec.data[:, 0], np.sin(np.arange(100)), atol=1e-6)
    np.testing.assert_allclose(rec.time[:3], [0.0, 0.001, 0.002])
    (tmp_path / "bad.c3d").write_bytes(b"not a c3d file")
    with pytest.raises(InputError, match=r"bad\.c3d: cannot read C3D"):
        read_emg(tmp_path / "bad.c3d")
