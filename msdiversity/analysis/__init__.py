"""Analysis of a recorded ensemble: specificity vs diversity, synergies, embedding, classical
baselines and statistics.

`analyze_recording(recording: xr.Dataset, config: AnalysisConfig) -> xr.Dataset` produces ONE flat
xarray Dataset (saved as `results/<experiment>/analysis.nc`, h5netcdf, written atomically). Variables
are grouped by name prefix: `spec_` specificity, `div_` diversity, `syn_` synergies, `emb_`
embedding, `base_` classical baselines, `stat_` statistics table. Every variable has attrs
`units` ("1" = dimensionless) and `long_name`; dataset attrs carry `experiment`, `model`,
`analysis_config` (JSON), `msdiversity_version`, `n_members`, `n_trials`, `normalisation`
("trial": distances divided by trial-to-trial variability; "signal": fallback when the recording has
a single trial, divided by the ensemble-mean pattern's temporal SD), `grf_reference`
("reference" | "ensemble_mean" | "none"), `has_grf` (0/1), `has_baselines` (0/1 + `baselines_skipped`
with the reason).

Dimensions and coordinates
--------------------------
| dim | coordinate values | meaning |
|---|---|---|
| `member`, `member_b` | member ids (int); both also carry `seed`, `effort_exponent`, ... copied from the recording on `member` | pairwise matrices are (member, member_b) |
| `trial` | 0..K | 0 = deterministic (mean action), 1..K stochastic |
| `phase` | 0, 1, ..., 100 (% gait cycle when the reference GRF has complete cycles, else % of the recorded duration; 101 samples) | attr `phase_normalisation` says which; coord `phase_time` (s) gives the matching time (first cycle) |
| `emg_channel`, `classical` | EMG channel labels (coord `emg_muscles`) / classical file stems | `cmp_` comparisons with EMG and OpenSim solutions (`msdiversity.analysis.external`, docs/METHODS_emg.md) |
| `time` | s (the recording's frames) | only for `base_id_torque` |
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
| `spec_joint_rmse_deg` | member | deg | RMSE over time and tracked rotational joints of qpos − qpos_ref |
| `spec_joint_rmse_per_joint_deg` | member, joint | deg | RMSE over time per joint (NaN for slide joints) |
| `spec_body_err_cm` | member | cm | mean over time and bodies of the Euclidean body-position error |
| `spec_grf_rmse_pct_bw` | member | % body weight | RMSE over time, feet and axes of grf − grf_target, / (m g) × 100 |
| `spec_grf_corr` | member | 1 | mean Pearson r over time of the (foot, axis) channels whose target SD > 1 % BW |
| `spec_alive_fraction` | member | 1 | fraction of the recording trial 0 is alive (not fallen or diverged) |
| `spec_matched` | member | bool | trial 0 alive throughout (`match_min_alive` = 1), joint RMSE <= `match_joint_rmse_deg` (5) and GRF RMSE <= `match_grf_rmse_pct_bw` (10) |
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
| `div_kin_rmse_norm`, `div_grf_rmse_norm` | member, member_b | 1 | same for tracked joint angles (deg) / GRF (% BW) |
| `div_within_act_rmse` | member | 1 | mean RMSE between pairs of that member's trials (activation) |
| `div_within_kin_rmse_deg`, `div_within_grf_rmse_pct_bw` | member | deg, % BW | same for kinematics / GRF |
| `div_muscle_cv` | muscle | 1 | CV across members (Winter): sqrt(mean_t σ_t²) / mean_t |μ_t| |
| `div_effective_dim_act` (`_kin`, `_grf`) | () | 1 (count) | participation ratio (Σλ)²/Σλ² of the member × feature covariance |
| `div_internal`, `div_external`, `div_index` | boot | 1 | see "diversity index" below, with 95 % bootstrap CI over members |
| `div_member_internal`, `div_member_external` | member | 1 | per-member normalised distance to the leave-one-out ensemble mean |

Diversity index (dimensionless, defined in `msdiversity.analysis.diversity`):
  nu_X = mean over member pairs a<b of RMSE(X_a, X_b) / mean over members of within-member
  trial-to-trial RMSE of X  ("how many noise floors apart are two members"; 0 for identical members).
  D_int = nu_activation;  D_ext = mean(nu_kinematics, nu_GRF) (nu_kinematics alone without GRF);
  index = D_int / (D_int + D_ext) in [0, 1]: 0 = muscles identical, 0.5 = muscles as diverse as
  movement, -> 1 = members differ in muscles but not in movement. CIs: percentile bootstrap over
  members (resampling members, self-pairs dropped).

Synergies (`syn_`): NMF (scikit-learn) of each member's activations (muscle × all trials' samples)
| variable | dims | units | definition |
|---|---|---|---|
| `syn_vaf` | member, k | 1 | variance accounted for, 1 − ‖A − WH‖²/‖A‖² (uncentred) |
| `syn_k_chosen` | member | 1 | smallest k with VAF ≥ threshold (attr `vaf_threshold`, default 0.90) |
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
| `emb_n_families` | () | 1 (argmax silhouette; 1 when the best silhouette < `min_silhouette`) |

Classical baselines (`base_`, need the MuJoCo model named in the recording attrs; frames nearest to
each phase sample)
| variable | dims | units | definition |
|---|---|---|---|
| `base_id_torque` | time, dof | N m (N for slide dofs) | `mj_inverse` of ref_qpos_full/qvel, qacc by finite differences |
| `base_so_activation` | p, phase, muscle | 1 | argmin Σ a^p s.t. R(q) (F_act(l,v) a + F_pas(l,v)) = τ_ID, 0 ≤ a ≤ 1 |
| `base_feasible_min`, `base_feasible_max` | phase, muscle | 1 | LP min / max of each a_i under the same constraints |
| `base_residual` | phase, dof | N m | reserve torque needed where muscles cannot produce τ_ID (0 when feasible) |
| `base_inside_fraction` | member | 1 | fraction of (phase, muscle) trial-0 activations within [min − tol, max + tol] |
| `base_inside_fraction_muscle` | member, muscle | 1 | same per muscle |
| `base_so_corr` | p, muscle | 1 | Pearson r between SO activation and the ensemble-mean activation |

Statistics (`stat_`, one row per test on dim `test`)
| variable | dims | units |
|---|---|---|
| `stat_n` | test | count (independent units: members) |
| `stat_statistic` | test | see `stat_statistic_name` |
| `stat_p` | test | 1 (permutation p-value, (1 + #{T* ≥ T}) / (1 + N), one-sided) |
| `stat_effect_size`, `stat_ci_low`, `stat_ci_high` | test | 1 (see `stat_effect_name`; 95 % bootstrap CI) |
| `stat_statistic_name`, `stat_effect_name`, `stat_description` | test | str |
Tests: `act_vs_external`, `act_vs_kinematics`, `act_vs_grf` (sign-flip permutation test over
members of d_m = normalised activation distance − normalised external distance of member m to the
leave-one-out ensemble mean; effect size Cohen's d_z), `synergies_shared` (observed mean matched
cosine vs shuffled-synergy null; effect size z against the null).
"""

__all__ = ["analyze_recording", "AnalysisConfig", "synthetic_recording"]


def __getattr__(name):
    import importlib

    where = {"analyze_recording": "msdiversity.analysis.core", "AnalysisConfig": "msdiversity.analysis.core",
             "synthetic_recording": "msdiversity.analysis.synthetic"}
    if name in where:
        return getattr(importlib.import_module(where[name]), name)
    raise AttributeError(f"module 'msdiversity.analysis' has no attribute {name!r}")
