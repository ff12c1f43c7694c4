"""Recorder: deterministic (and stochastic) rollouts of every ensemble member -> recording.nc.

`record_ensemble(env, make_policy, params, members, ...)` rolls every member out from reference
frame 0 over the whole reference (trial 0 = the deterministic policy, i.e. the mean action; trials
1..K sample the stochastic policy with different keys), vmapped over members x trials inside one
jitted `lax.scan` (so the CPU physics backend makes one `mujoco.batch` call per control step), and
returns an xarray Dataset in the layout of docs/CONTRACTS.md. `record_experiment(results_dir)`
loads a trained ensemble (`msdiversity.ensemble.load_trained`) and writes
`results/<experiment>/recording.nc` atomically.
"""

from msdiversity.recording.recorder import RecordConfig, record_ensemble, record_experiment

__all__ = ["RecordConfig", "record_ensemble", "record_experiment"]
