#!/usr/bin/env bash
# GPU device check (benchmarks/gpu_check.py; --help explains): wall time, tokens/s, MFU and peak GPU memory of the
# judge track, the policy track, reward-model scoring and GRPO, on random-weight Qwen3 checkpoints built offline.
#   bash benchmarks/gpu_check.sh           # one CUDA GPU, full size (<= 8 min on an H100/H200) -> benchmarks/results-gpu.json
#   bash benchmarks/gpu_check.sh --quick   # tiny sizes on a CPU (or GPU) -> a temporary file, or --output PATH
# The interpreter is $PYTHON, else .venv/bin/python when present, else python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$python" "$root/benchmarks/gpu_check.py" "$@"
