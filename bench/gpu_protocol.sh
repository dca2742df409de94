#!/usr/bin/env bash
# The device session's one prepared script: the CUDA tests, then a protocol's cells on the
# GPU until the time is up (cells are kept as they end; a later run continues the cache).
#   OUT=/tmp/out bash bench/gpu_protocol.sh PROTOCOL.toml [SECONDS] [JOBS] [DEVICE]
# On the GPU machine (python3 there holds torch; the packages it lacks travel as wheels
# in .whl, see /work/.library/device/README.md):
#   bash bench/gpu_protocol.sh bench/protocols/fullband-v1.toml 430 12 cuda
set -u -o pipefail
protocol=$1; seconds=${2:-430}; jobs=${3:-12}; device=${4:-cuda}
py=${PYTHON:-python3}
name=$(basename "$protocol" .toml)
if [ -d .whl ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 NUMBA_OPT=0  # B&B's jitclasses compile in each process; O0 gives bitwise the same distances
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  $py -c "import torch, numpy, numba; print('torch', torch.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__, 'cuda', torch.cuda.is_available())"
  nproc; } 2>&1 | tee "$OUT/machine.txt"
if [ "$device" = cuda ]; then  # beside the protocol: the machine has cores and memory to spare
  ( timeout 150 $py -m pytest --noconftest -o addopts="" -p no:cacheprovider -q -m cuda \
      tests/ml/test_cuda.py > "$OUT/cuda_tests.txt" 2>&1 ) &
fi
start=$(date +%s)
timeout "$seconds" $py bench/protocol.py "$protocol" --device "$device" --jobs "$jobs" \
  --cache "$OUT/$name.jsonl" 2>&1 | grep -v -i "warn" | tee "$OUT/run.txt"
echo "protocol run: $(( $(date +%s) - start )) s" | tee -a "$OUT/run.txt"
$py bench/protocol.py "$protocol" --report --cache "$OUT/$name.jsonl" > "$OUT/report.txt" 2>&1
tail -40 "$OUT/report.txt"
wait
[ -f "$OUT/cuda_tests.txt" ] && tail -8 "$OUT/cuda_tests.txt"
