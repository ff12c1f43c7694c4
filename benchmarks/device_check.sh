#!/usr/bin/env bash
# GPU check of the mjx-warp backend, sized to finish within 8 minutes on one NVIDIA GPU machine.
#
#   bash benchmarks/device_check.sh            # from the repository root
#
# 1. installs the gpu extra (jax[cuda12] + warp) into .venv (created if absent);
# 2. runs the mjx-warp parity tests (tests/test_warp_parity.py) on CUDA;
# 3. prints env steps/s of mjx-warp at 1024, 4096 and 8192 envs for myolegs, myofullbody and
#    MS-Human-700, beside the cpu backend (MuJoCo C on all cores) at 1024 envs, with memory per env;
# 4. trains the myolegs walking experiment (experiments/walk.toml, 1024 envs per member) on mjx-warp
#    for 3 minutes, then Ctrl-C (checkpoint saved) and prints the metrics summary.
# Every stage has its own time limit (seconds, overridable: T_INSTALL, T_TESTS, T_BENCH, T_TRAIN), so the
# script ends in time even when a stage is cut short; each stage prints "== <stage>: rc=<exit code>".
# Shared data (MS-Human-700 XML, the OpenSim walk) are read from $MSD_DATA (default ../shared/data);
# stages whose data are absent say so and are skipped. Output also goes to $OUT/device_check.log
# when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
T_INSTALL=${T_INSTALL:-110}
T_TESTS=${T_TESTS:-90}
T_BENCH=${T_BENCH:-100}
T_TRAIN=${T_TRAIN:-180}
DATA=${MSD_DATA:-$( [ -d .devdata ] && echo .devdata || echo ../shared/data )}  # .devdata: benchmarks/device_wheels.sh
MS700="$DATA/ms_human_700/MS-Human-700.xml"
PY=.venv/bin/python
export WARP_CACHE_PATH=${WARP_CACHE_PATH:-$PWD/.venv/warp-cache}
export MSD_PROGRESS_INTERVAL=${MSD_PROGRESS_INTERVAL:-20}
[ -n "${OUT:-}" ] && exec > >(tee "$OUT/device_check.log") 2>&1
t0=$SECONDS
stage() { echo "== $1: rc=$2 ($((SECONDS - t0)) s elapsed)"; }

echo "== install (limit ${T_INSTALL} s)"
if ls .whl/part.* >/dev/null 2>&1; then
  # wheel parts carried by benchmarks/device_wheels.sh (no package index there): the image's Python and
  # JAX, the missing packages from the parts, this repository on the path
  mkdir -p /tmp/msd-wheels && cat .whl/part.* | tar xf - -C /tmp/msd-wheels
  timeout "$T_INSTALL" python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site /tmp/msd-wheels/*.whl
  rc=$?
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  mkdir -p .venv/bin
  ln -sf "$(command -v python3)" .venv/bin/python
  printf '#!/usr/bin/env bash\nexec python3 -m msdiversity.cli "$@"\n' > .venv/bin/msdiversity
  chmod +x .venv/bin/msdiversity
  stage install $rc
else
  test -d .venv || python3 -m venv .venv
  timeout "$T_INSTALL" .venv/bin/pip install --quiet -e ".[gpu,test]"
  stage install $?
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import jax, warp; print('jax', jax.__version__, jax.devices(), '| warp', warp.__version__)"
if ! $PY -c "import jax, sys; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)"; then
  echo "no GPU visible to JAX: stopping (the rest of this check needs CUDA)"; exit 1
fi

echo "== parity tests on CUDA (limit ${T_TESTS} s)"
timeout "$T_TESTS" $PY -m pytest -q -x tests/test_warp_parity.py --durations=0 -p no:cacheprovider
stage tests $?

echo "== throughput (limit ${T_BENCH} s): env steps/s, 10 substeps per env step"
models=(myolegs myofullbody)
if [ -f "$MS700" ]; then models+=("$MS700"); else echo "MS-Human-700 absent ($MS700): skipped"; fi
bench_end=$((SECONDS + T_BENCH))
for m in "${models[@]}"; do
  left=$((bench_end - SECONDS)); [ $left -le 5 ] && { echo "bench time used up: skipping $m"; continue; }
  timeout "$left" .venv/bin/msdiversity bench physics --model "$m" --nsim 1024 --threads "$(nproc)" \
    --steps 5 --repeats 1 --backends cpu 2>&1 | grep -E "summary|Error|error" || true
  for n in 1024 4096 8192; do
    left=$((bench_end - SECONDS)); [ $left -le 5 ] && break
    timeout "$left" .venv/bin/msdiversity bench physics --model "$m" --nsim "$n" --steps 10 --repeats 2 \
      --backends mjx-warp --no-raw 2>&1 | grep -E "summary|Error|error" || true
  done
done
stage bench 0

echo "== myolegs walking training on mjx-warp (${T_TRAIN} s, then Ctrl-C)"
if [ -f "$DATA/opensim/gait2354_subject01_walk1_ik.mot" ]; then
  exp=$(mktemp -d)/walk_gpu.toml
  sed -e "s#\.\./shared/data#$(cd "$DATA" && pwd)#g" -e 's/^num_envs = .*/num_envs = 1024/' \
      -e 's/^name = "walk"/name = "walk_gpu"/' experiments/walk.toml > "$exp"
  timeout -s INT -k 30 "$T_TRAIN" .venv/bin/msdiversity train "$exp" --backend mjx-warp \
      --results-dir results/walk_gpu
  stage train $?
  $PY - <<'EOF'
import xarray as xr
ds = xr.open_dataset("results/walk_gpu/metrics.nc", engine="h5netcdf")
it = int(ds["joint_err_deg"].notnull().any("member").sum())
steps = float(ds["env_steps"].max()) * ds.sizes["member"]
wall = float(ds["wall_time"].max())
print(f"walk on mjx-warp: {it} iterations, {steps:,.0f} env steps in {wall:.0f} s = {steps / wall:,.0f} env steps/s; "
      f"eval joint error first/last: {ds['eval_joint_err_deg'].isel(iteration=0).values} / "
      f"{ds['eval_joint_err_deg'].dropna('iteration', how='all').isel(iteration=-1).values} deg")
EOF
else
  echo "walk data absent ($DATA/opensim): training skipped"
fi
echo "== done in $((SECONDS - t0)) s"
