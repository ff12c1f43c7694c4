"""Analysis of a recorded ensemble: specificity vs diversity, synergies, embedding, classical
baselines and statistics.

`analyze_recording(recording: xr.Dataset, config: AnalysisConfig) -> xr.Dataset` produces ONE flat
xarray Dataset (saved as `results/<experiment>/analysis.nc`, h5netcdf, written atomically). Variables
are grouped by name prefix: `spec_` specificity, `div_` diversity, `syn_` synergies, `emb_`
embedding, `base_` classical baselines, `stat_` statistics table. Every variable has attrs
`units` ("1" = dimensionless) and `long_name`; dataset attrs carry `experiment`, `model`,
`analysis_config` (JSON), `msdiversity_version`, `n_members`, `n_trials`, `normalisation`
("trial": distances in units of trial-to-trial variability; "none": refused, because the recording
has a single trial per member or zero trial-to-trial variability - `diversity_refused` says why, and
the index, normalised distances and activation-vs-movement tests are NaN / "not computed"),
`tracking_failed` (1 when fewer than 2 members reproduce the motion: then no `div_`, `syn_`, `emb_`
variables are written and every test is "not computed"), `grf_reference`
("reference" | "ensemble_mean" (mean of the *other* members) | "none"), `has_grf` (0/1),
`has_baselines` (0/1 + `baselines_skipped` with the reason), `has_nullspace` (0/1 +
`nullspace_skipped`).

Dimensions and coordinates
--------------------------
| dim | coordinate values | meaning |
|---|---|---|
| `member`, `member_b` | member ids (int); both also carry `seed`, `effort_exponent`, ... copied from the recording on `member` | pairwise matrices are (member, member_b) |
| `trial` | 0..K | 0 = deterministic (mean action), 1..K stochastic |
| `phase` | 0, 1, ..., 100 (% gait cycle when the reference GRF has complete cycles, else % of the recorded duration; 101 samples) | attr `phase_normalisation` says which; coord `phase_time` (s) gives the matching time (first cycle) |
| `emg_channel`, `classical` | EMG channel labels (coord `emg_muscles`) / classical file stems | `cmp_` comparisons with EMG and OpenSim solutions (`msdiversity.analysis.external`, docs/METHODS_emg.md) |
| `time` | s (the recording's frames) | only for `base_id_torque` and `base_root_residual_*` |
| `fphase`, `fsample` | phases (%) where the feasible set is sampled / sample index | `base_feasible_*` |
| `muscle` | muscle names | |
| `joint` | scalar joint names (rotational *and* slide joints; rotational used for degrees) | |
| `foot`, `axis` | 'r','l' / 'x','y','z' | |
| `dof` | dof names (joint name; free/ball joints expand to `<joint>_tx ... _rz`) | |
| `k` | 1..k_max | number of synergies in the VAF curve |
| `synergy` | 0..k_common-1 | synergies at the common k, aligned across members |
| `component` | 0..n_pca-1 | PCA components |
| `umap_component` | 0, 1 | |
| `n_clusters` | 2..max_clusters | candidate numbers of solution families |
| `p` | static-optimisation exponents, e.g. 1, 2, 3 | |
| `test` | test names (str) | statistics table |
| `boot` | 'estimate','ci_low','ci_high' | bootstrap summaries |

Specificity (`spec_`): trial 0 of each member against the reference (alive frames only)
| variable | dims | units | definition |
|---|---|---|---|
| `spec_joint_rmse_deg` | member | deg | RMSE over time and tracked rotational joints (plus a planar root's hinges) of qpos − qpos_ref, wrapped to ±180° |
| `spec_root_rmse_deg` | member | deg | the root-hinge (planar root orientation) part alone; NaN when the recording has none (a free root's orientation is not recorded) |
| `spec_joint_rmse_per_joint_deg` | member, joint | deg | RMSE over time per joint (NaN for slide joints) |
| `spec_body_err_cm` | member | cm | mean over time and bodies of the Euclidean body-position error |
| `spec_grf_rmse_axis_pct_bw` | member, axis | % body weight | RMSE over time and both feet of grf − grf_target per force component, / (m g) × 100 |
| `spec_grf_vertical_rmse_pct_bw` | member | % body weight | the vertical component of the above |
| `spec_grf_rmse_pct_bw` | member | % body weight | the worst component (what matching uses) |
| `spec_grf_corr` | member | 1 | mean Pearson r over time of the (foot, axis) channels whose target SD > 1 % BW |
| `spec_alive_fraction` | member | 1 | fraction of the recording trial 0 is alive (not fallen or diverged) |
| `spec_matched` | member | bool | trial 0 alive throughout (`match_min_alive` = 1), joint (and root) RMSE <= `match_joint_rmse_deg` (5) and worst GRF component RMSE <= `match_grf_rmse_pct_bw` (10) |
| `spec_kin_spread_deg` | phase, joint | deg | SD across members of trial-0 joint angles |
| `spec_grf_spread_pct_bw` | phase, foot, axis | % body weight | SD across members of trial-0 GRF |
| `spec_kin_spread_mean_deg`, `spec_grf_spread_mean_pct_bw` | () | deg, % BW | means of the two above |
| `spec_qpos_mean` | phase, joint | rad or m | ensemble mean (for plots), with `spec_qpos_ref` (phase, joint) |
Only matched members enter the diversity (`div_`), synergy (`syn_`), embedding (`emb_`), baseline
placement (`base_inside_*`) and statistics results; the others get NaN (False for bools, -1 for
integer labels) there. Dataset attrs `n_members`, `n_members_matched` and `match_note` say so.
GRF variables are NaN when the model has no feet (`has_grf` = 0); the GRF target is `grf_ref`
when the recording has it, otherwise the ensemble mean (`grf_reference` attr).

Diversity (`div_`): time-normalised trial-0 patterns; distances between members
| variable | dims | units | definition |
|---|---|---|---|
| `div_act_mean`, `div_act_sd` | phase, muscle | 1 | ensemble mean / SD across members of activation |
| `div_act_rmse` | member, member_b | 1 (activation) | RMSE over (phase, muscle) between members' activations |
| `div_act_corr_dist` | member, member_b | 1 | 1 − Pearson r of the flattened (phase, muscle) patterns |
| `div_act_rmse_norm`, `div_act_corr_dist_norm` | member, member_b | 1 | the above divided by sqrt((w_a² + w_b²)/2), w = within-member trial-to-trial value |
| `div_kin_rmse_norm`, `div_trans_rmse_norm`, `div_grf_rmse_norm` | member, member_b | 1 | same for tracked hinge angles (deg) / slide joints (cm) / GRF (% BW), each its own modality |
| `div_within_act_rmse` | member | 1 | mean RMSE between pairs of that member's trials (activation) |
| `div_within_kin_rmse_deg`, `div_within_trans_rmse_cm`, `div_within_grf_rmse_pct_bw` | member | deg, cm, % BW | same for the movement modalities |
| `div_muscle_cv` | muscle | 1 | CV across members (Winter): sqrt(mean_t σ_t²) / mean_t |μ_t| |
| `div_effective_dim_act` (`_kin`, `_grf`) | () | 1 (count) | participation ratio (Σλ)²/Σλ² of the member × feature covariance |
| `div_internal`, `div_external`, `div_index` | boot | 1 | see "diversity index" below, with 95 % bootstrap CI over members |
| `div_index_rmse` | boot | 1 | the plain RMSE-ratio index, kept as a check: it depends on how smooth the noise is |
| `div_band_bins` | () | 1 | DCT bins in the band the index uses |
| `div_member_internal`, `div_member_external` | member | 1 | per-member band-matched distance to the leave-one-out ensemble mean / noise |
| `div_null_fraction` | boot | 1 | model-based: fraction of member-to-member activation difference in the null space of the activation-to-torque map (`msdiversity.analysis.nullspace`), 95 % CI over members and frames |
| `div_null_fraction_phase` | phase | 1 | the same per phase sample |
| `div_null_fraction_pair` | member, member_b | 1 | the same per member pair |
| `div_null_fraction_chance` | () | 1 | mean (muscles − rank) / muscles: what random differences would give |
| `div_null_rank` | phase | 1 | rank of the activation-to-torque map |

Diversity index (dimensionless, defined in `msdiversity.analysis.diversity`):
  nu_X = sqrt(median over a band of DCT bins of [mean over member pairs of the power of X_a − X_b]
  / [mean over members of the power of trial-to-trial differences]) ("how many noise floors apart
  are two members", band-matched so that the body's low-pass filtering of noise does not bias it).
  D_int = nu_activation; D_ext = mean over movement modalities (hinge angles, slide joints, GRF);
  index = D_int / (D_int + D_ext) in [0, 1]: 0 = muscles identical, 0.5 = muscles differ as much as
  movement relative to their noise, -> 1 = members differ in muscles but not in movement. CIs:
  percentile bootstrap over members (resampling members, self-pairs dropped). The model-based
  `div_null_fraction` answers "how much of the diversity is redundancy" in physical terms.

Synergies (`syn_`): NMF (scikit-learn) of each member's deterministic (trial-0) activations, tonic level removed
(exploration noise of the stochastic trials is no synergy structure, but the per-muscle VAF criterion would count it)
| variable | dims | units | definition |
|---|---|---|---|
| `syn_vaf` | member, k | 1 | variance accounted for, 1 − ‖A − WH‖²/‖A‖² (uncentred) |
| `syn_vaf_muscle` | member, k, muscle | 1 | per-muscle VAF |
| `syn_tonic`, `syn_muscle_active` | member, muscle | 1, bool | tonic level removed before NMF; muscles the per-muscle criterion applies to |
| `syn_k_chosen` | member | 1 | smallest k with VAF ≥ 0.90 and every active muscle's VAF ≥ 0.75 (attrs `vaf_threshold`, `vaf_muscle_threshold`); -1 for a member without data |
| `syn_k_chosen_global` | member | 1 | smallest k with global VAF ≥ threshold only (a check) |
| `syn_k_elbow` | member | 1 | elbow of the VAF curve (max distance to the chord), a check |
| `syn_k_common` | () | 1 | median of `syn_k_chosen` (rounded up): k used for matching |
| `syn_W` | member, synergy, muscle | 1 | unit-norm synergy vectors at k_common, aligned to the reference member |
| `syn_H` | member, synergy, phase | 1 | activation coefficients of trial 0 (scaled so A ≈ W H) |
| `syn_match_cosine` | member, member_b | 1 | mean cosine of optimally matched synergies (linear_sum_assignment) |
| `syn_matched_cosine` | member, synergy | 1 | cosine of each aligned synergy with the reference member's |
| `syn_cross_vaf` | member, member_b | 1 | VAF of member_b's data with member's W fixed, H refit by NNLS |
| `syn_shared` | member, synergy | bool | matched cosine above the null 95th percentile |
| `syn_null_cosine_p95` | () | 1 | 95th percentile of matched cosines under the shuffled null |
| attr `reference_member` on `syn_W` | | | the member (medoid of `syn_match_cosine`) all others are aligned to |

Embedding (`emb_`): time-normalised activation patterns (phase × muscle) of every (member, trial)
| variable | dims | units |
|---|---|---|
| `emb_pca` | member, trial, component | 1 (PCA scores) |
| `emb_pca_explained` | component | 1 (explained variance ratio) |
| `emb_umap` | member, trial, umap_component | 1 (NaN when too few samples or UMAP disabled) |
| `emb_silhouette` | n_clusters | 1 (agglomerative Ward on members' trial-0 PCA scores) |
| `emb_cluster` | member | 1 (solution family label, 0-based) |
| `emb_n_families` | () | 1 (argmax silhouette when `emb_family_p` <= `family_alpha`, else 1) |
| `emb_family_p`, `emb_silhouette_null_p95` | () | 1 (parametric bootstrap against a unimodal Gaussian null with the scores' covariance) |

Classical baselines (`base_`, need the MuJoCo model named in the recording attrs; frames nearest to
each phase sample)
| variable | dims | units | definition |
|---|---|---|---|
| `base_id_torque` | time, dof | N m (N for slide dofs) | `mj_inverse` of ref_qpos_full/qvel (qacc by finite differences; constraints off, measured GRF at the COP removed), projected onto the independent coordinates (attr `external_loads`) |
| `base_so_activation` | p, phase, muscle | 1 | argmin Σ a^p s.t. R(q) (F_act(l,v) a + F_pas(l,v)) = τ_ID, 0 ≤ a ≤ 1 |
| `base_feasible_min`, `base_feasible_max` | phase, muscle | 1 | LP min / max of each a_i under the same constraints |
| `base_residual` | phase, dof | N m | reserve torque needed where muscles cannot produce τ_ID (0 when feasible); on independent dofs no muscle spans (a free root) the whole generalised force |
| `base_inside_fraction` | member | 1 | fraction of (phase, muscle) trial-0 activations within [min − tol, max + tol] |
| `base_inside_fraction_muscle` | member, muscle | 1 | same per muscle |
| `base_so_corr` | p, muscle | 1 | Pearson r between SO activation and the ensemble-mean activation |
| `base_torque_error` | member, phase | N m | ‖A a − b‖ of the member's trial-0 activation vector at the reference state (b: what muscles can produce) |
| `base_torque_error_rel` | member | 1 | sqrt(Σ ‖A a − b‖²) / sqrt(Σ ‖b‖²) over phases: 0 = produces the torques, 1 = no better than all muscles off (vector-level feasibility; the band test above is per muscle and does not discriminate) |
| `base_dof_independent` | dof | bool | dof not driven by an equality constraint (driven dofs' loads are carried onto their driver) |
| `base_root_residual_force`, `base_root_residual_force_pct_bw`, `base_root_residual_moment` | time, axis | N, % BW, N m | free-root residuals (OpenSim RRA convention), world frame, moments about the root origin; only for a free root |
| `base_root_fz_mean_pct_bw`, `base_root_fz_max_pct_bw` | () | % BW | mean / max of the absolute vertical root residual |
| `base_id_valid` | () | 1 | 1 when the ID has every external load (measured GRF at the COP, or a model without feet); `long_name` says what was applied |
| `base_feasible_samples` | fphase, fsample, muscle | 1 | uniform samples of {a ∈ [0,1]^m : A a = b} at `feasible_frames` phases (coord `fphase`, %) |
| `base_feasible_percentile` | member, fphase, muscle | 1 | member's activation as a quantile of the feasible marginal (`_ref`: the true activation, synthetic motions) |
| `base_feasible_coverage` | fphase, muscle | 1 | feasible mass between the ensemble's min and max (attr `uniform_expectation` = (M−1)/(M+1)) |
| `base_feasible_var_ratio`, `base_feasible_drift` | fphase | 1 | trace cov(members) / trace cov(samples); sampler check (relative change of marginal SDs over the run's second half) |

Statistics (`stat_`, one row per test on dim `test`)
| variable | dims | units |
|---|---|---|
| `stat_n` | test | count (independent units: members) |
| `stat_statistic` | test | see `stat_statistic_name` |
| `stat_p` | test | 1 (permutation p-value, (1 + #{T* ≥ T}) / (1 + N), one-sided) |
| `stat_effect_size`, `stat_ci_low`, `stat_ci_high` | test | 1 (see `stat_effect_name`; 95 % bootstrap CI) |
| `stat_min_p` | test | 1 (smallest attainable p with this n: 2 members -> 0.25) |
| `stat_statistic_name`, `stat_effect_name`, `stat_description`, `stat_note` | test | str (`stat_note`: caveats, e.g. "cannot detect an effect" or "not computed: why") |
Tests: `act_vs_kinematics`, `act_vs_trans`, `act_vs_grf`, and `act_vs_external` (their mean) only
when there are two or more movement modalities (sign-flip permutation test over members of d_m =
band-matched activation distance − movement distance of member m to the leave-one-out ensemble
mean; effect size Cohen's d_z); `synergies_differ` (held-out cross-reconstruction: VAF lost with
another member's synergies, minus a 1 % tolerance; H1: synergies differ, H0: shared).
"""

__all__ = ["analyze_recording", "AnalysisConfig", "synthetic_recording"]


def __getattr__(name):
    import importlib

    where = {"analyze_recording": "msdiversity.analysis.core", "AnalysisConfig": "msdiversity.analysis.core",
             "synthetic_recording": "msdiversity.analysis.synthetic"}
    if name in where:
        return getattr(importlib.import_module(where[name]), name)
    raise AttributeError(f"module 'msdiversity.analysis' has no attribute {name!r}")
