"""The GPU device check (benchmarks/gpu_check.sh) end to end at --quick size on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("judge_hf", "judge_rm", "policy_hf", "policy_vllm", "rm_scoring", "grpo")


def _has_vllm() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


@pytest.mark.slow
def test_quick_gpu_check_writes_every_part(tmp_path):
    output = tmp_path / "x.json"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--quick", "--output", str(output)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick" and set(results["parts"]) == set(PARTS)
    assert results["machine"]["versions"]["torch"] and "vllm" in results["machine"]["versions"]
    assert results["sizes"]["model"]["causal"]["parameters"] > 1e6
    parts = results["parts"]
    for name, entry in parts.items():
        assert "error" not in entry, (name, entry.get("traceback"))
        if name == "policy_vllm" and not _has_vllm():
            assert entry["skipped"] == "skipped: vllm not installed"
            continue
        for key in ("wall_s", "tokens", "tokens_per_s", "instances", "instances_per_s", "flops"):
            assert entry[key] > 0, (name, key, entry[key])
        if results["device"] == "cpu":
            assert entry["mfu"] is None and entry["mfu_reason"].startswith("no GPU")
            assert entry["peak_gpu_memory_gib"] is None
    assert parts["judge_hf"]["unknown_verdicts"] == parts["judge_rm"]["unknown_verdicts"] == 0
    assert parts["rm_scoring"]["one_by_one"]["forward_calls"] == parts["rm_scoring"]["queries"]
    assert parts["rm_scoring"]["speedup"] > 0 and parts["rm_scoring"]["max_abs_reward_diff"] < 1e-3
    assert parts["policy_hf"]["generated_tokens"] > 0 and parts["policy_hf"]["grading"]["verdicts"] > 0
    assert parts["grpo"]["steps"] == 2
    if not _has_vllm():
        assert parts["grpo"]["use_vllm"] is False and parts["grpo"]["vllm"] == "skipped: vllm not installed"
    assert {t["result"] for t in results["targets"].values()} == {"not measured"}, "quick sizes judge no target"
    assert "judge_hf" in result.stdout and "not measured" in result.stdout
