#!/usr/bin/env bash
# Prepare, on a machine with a package index, what benchmarks/device_check.sh needs on a GPU machine that
# has none (this workplace's device machines: Python 3.12 with JAX/CUDA, flax, optax, orbax, xarray, scipy,
# scikit-learn, typer, rich preinstalled; no MuJoCo, MJX, Warp, myo-sim, plotly, h5netcdf, umap).
#
#   bash benchmarks/device_wheels.sh        # writes .whl/part.aa, .whl/part.ab, ... (git-ignored)
#
# The wheels (~210 MB, warp-lang alone 149 MB) exceed what one device call may carry (64 MiB), so they are
# packed into one tar and split into 55 MiB parts (the ~1.3 MB repository travels with each). Carry ONE part
# per call (carry: [".whl/part.aa"], then ".whl/part.ab", ...) on a warm machine (it returns after ~30 s
# idle: make the calls back to back); the parts stay there between calls as ignored files. The shared data
# the check reads (MS-Human-700, the OpenSim walk; ../shared does not travel) are copied into .devdata/:
# carry it with the last part. device_check.sh then joins and installs the parts and reads .devdata/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${PYV:-3.12}
W=.whl
for d in /.whl/ /.devdata/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
DATA=${MSD_DATA:-../shared/data}
rm -rf .devdata && mkdir -p .devdata/opensim
cp -r "$DATA/ms_human_700" .devdata/ 2>/dev/null || echo "no $DATA/ms_human_700: MS-Human-700 stage will skip"
cp "$DATA"/opensim/gait2354_subject01_walk1_* .devdata/opensim/ 2>/dev/null || echo "no walk data in $DATA/opensim"
du -sh .devdata
rm -rf "$W" && mkdir -p "$W/full"
# the versions pinned in pyproject.toml (mujoco and mujoco-mjx at the same version) + their missing needs
pkgs=(mujoco==3.17.0 mujoco-mjx==3.17.0 warp-lang==1.18.0 myo-sim==0.2.4 umap-learn==0.5.12 pynndescent
      h5netcdf==1.8.2 plotly==7.1.0 glfw pyopengl trimesh websockets)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$W/full" "${pkgs[@]}"
(cd "$W/full" && tar cf - ./*.whl) | split -b 55m - "$W/part."
rm -rf "$W/full"
ls -la "$W"
echo "carry each of: $(cd "$W" && ls part.* | sed 's#^#.whl/#' | tr '\n' ' ')(one per call; .devdata with the last), then run device_check.sh"
