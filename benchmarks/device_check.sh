#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one script, for a lent GPU machine whose Python has
# torch, lightning, torchmetrics, pandas and scipy but not the rest of gml's needs (about
# 6 minutes on one H100; run it from the repository root):
#
#   1. here, once: wheels of the missing packages for the machine's Python (3.12 there):
#        mkdir -p .gpu/whl && pip download --no-deps --only-binary=:all: --python-version 3.12 \
#          --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
#          -d .gpu/whl soundfile cffi pycparser jsonargparse docstring_parser typeshed_client
#      and, for the bf16 agreement, a trained demo checkpoint as .gpu/demo.ckpt with a few of
#      its demo stimuli (lossless FLAC) listed in .gpu/demo/pairs.csv (reference, coded);
#      keep .gpu/ out of git (.git/info/exclude) and carry it to the machine.
#   2. there: bash benchmarks/device_check.sh   (WORKERS=8,15 by default; 0 adds the reading
#      thread, about 20 s more)
set -u
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
if [ -d .gpu/whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
echo "== tests that need CUDA, and the reading and delay tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_inference.py tests/test_delay.py \
    tests/test_pair_audio.py "tests/test_features.py::test_cuda_matches_cpu" \
    "tests/test_stream.py::test_cuda_frontend" 2>&1 | tail -4
echo "== a folder of files, end to end and by stage"
timeout 240 python3 benchmarks/predict_folder.py --device cuda --workers "${WORKERS:-8,15}" \
    --bf16 --batch-size 16,32 --refs 40 --coded 8 --dir /tmp/gml-corpus \
    --profile "${OUT:-/tmp}/gml-profile.txt"
echo "== the same folder with the paper-fast preset (the stem strides 2 in time)"
timeout 120 python3 benchmarks/predict_folder.py --device cuda --workers 15 --preset paper-fast \
    --refs 40 --coded 8 --dir /tmp/gml-corpus
if [ -f .gpu/demo.ckpt ] && [ -f .gpu/demo/pairs.csv ]; then
    echo "== bf16 against fp32 on the demo model"
    timeout 75 python3 benchmarks/bf16_agreement.py --ckpt .gpu/demo.ckpt \
        --pairs .gpu/demo/pairs.csv --device cuda --rounds 3
fi
echo "== gml fit against the bare training step on the GPU (demo; prepared first, about a minute)"
timeout 240 python3 benchmarks/fit_throughput.py --device cuda --steps 100 --num-workers 4
timeout 120 python3 benchmarks/fit_throughput.py --device cuda --steps 100 --num-workers 4 \
    --precision bf16-mixed
