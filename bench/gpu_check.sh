#!/usr/bin/env bash
# One prepared command for a lent GPU machine: the CUDA tests (the real model on CUDA, every
# technique in float32/bfloat16/float16 on CUDA, the 'auto' memory budgets), then the GPU benchmark.
# Budget: ~8 minutes (tests <= ~3, benchmark <= ~5); each step has its own timeout so a hang
# cannot eat the machine's 15 minutes. Without CUDA both steps say SKIP and exit 0.
# Usage: bash bench/gpu_check.sh   (from the repository root; writes logs under $OUT if set)
set -u
out="${OUT:-/tmp/interplab-gpu}"
mkdir -p "$out"
if [ -f .venv/bin/activate ]; then source .venv/bin/activate; fi
python - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    free, total = torch.cuda.mem_get_info()
    print(torch.cuda.get_device_name(), f"free {free/2**30:.1f} / {total/2**30:.1f} GiB")
PY
status=0
timeout 200 python -m pytest tests/integration/test_cuda.py tests/unit/test_precision.py tests/unit/core/test_memory.py \
    -q -p no:cacheprovider -m "slow or not slow" \
    2>&1 | tee "$out/cuda_tests.txt" || status=$?
(cd bench && timeout 330 python bench_gpu.py --repeats 5 "$@") 2>&1 | tee "$out/bench_gpu.txt" || status=$?
exit "$status"
