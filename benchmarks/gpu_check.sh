#!/usr/bin/env bash
# The GPU check's runner (benchmarks/gpu_check.py), in two halves.
#
# Here, from the repository root, with the project's .venv:
#     bash benchmarks/gpu_check.sh prepare
# downloads Keras and what it needs beyond the device image (namex, optree)
# as wheels for Python 3.12 into .whl/, builds this package's wheel there,
# and copies the 16S training file into .gpu_data/ (.gitignore names both).
#
# On the device machine (no network), carrying .whl and .gpu_data:
#     bash benchmarks/gpu_check.sh run            # the check, JAX then PyTorch
#     bash benchmarks/gpu_check.sh train 8        # train both models 8 minutes (JAX)
# installs the wheels into /tmp/site and writes under $OUT (or ./gpu_out).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
out=${OUT:-gpu_out}

if [ "$mode" = prepare ]; then
    rm -rf .whl && mkdir -p .whl .gpu_data
    keras_version=$(.venv/bin/python -c "import keras; print(keras.__version__)")
    for wheel in "keras==$keras_version" namex optree; do
        .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: \
            --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl "$wheel"
    done
    .venv/bin/python -m pip wheel --quiet --no-deps -w .whl .
    data=../shared/data/rna/strand16s/train.txt
    if [ -f "$data" ]; then cp "$data" .gpu_data/train.txt; else echo "no $data: synthetic data only"; fi
    ls -la .whl .gpu_data
    exit 0
fi

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
data=()
[ -f .gpu_data/train.txt ] && data=(--data .gpu_data/train.txt)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
case "$mode" in
run)
    status=0
    for backend in jax torch; do
        python3 benchmarks/gpu_check.py --backend "$backend" "${data[@]}" --out "$out/$backend" \
            "${@:2}" || status=1
    done
    exit $status
    ;;
train)
    python3 benchmarks/gpu_check.py --backend jax "${data[@]}" --train "${2:-8}" \
        --init benchmarks/results/rna_long --out "$out/train" "${@:3}"
    ;;
*)
    echo "usage: bash benchmarks/gpu_check.sh prepare | run [gpu_check options] | train [MINUTES]" >&2
    exit 2
    ;;
esac
