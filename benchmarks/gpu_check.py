#!/usr/bin/env python
"""GPU device check: throughput, model FLOP utilisation (MFU) and peak memory of the heavy code paths.

    bash benchmarks/gpu_check.sh                 # full size on one CUDA GPU (<= 8 min on an H100/H200),
                                                 # writes benchmarks/results-gpu.json
    bash benchmarks/gpu_check.sh --quick         # tiny sizes on CPU or GPU (about 1 min on 2 cores), writes a
                                                 # temporary file (or --output PATH), never results-gpu.json
    bash benchmarks/gpu_check.sh --only judge_hf rm_scoring    # a subset of the parts

Offline (no Hugging Face Hub): a random-weight Qwen3 causal LM and a matching 1-label reward model
(Qwen3ForSequenceClassification) are built from a config, with bench.tiny's locally trained tokenizer, in a
temporary folder. Every part runs the classes `promedical-bench run` and `train-grpo` use:

  judge_hf     runner.run_judge_track, judge build_judge("hf:CAUSAL") (CausalLMJudge), sample bench
  judge_rm     the same with build_judge("rm:REWARD") (RewardModelJudge)
  policy_hf    runner.run_policy_track, generator build_generator (HFGenerator), graded by rm:REWARD
  policy_vllm  the same with VLLMGenerator (only when vllm imports and a CUDA device exists)
  rm_scoring   RewardModelJudge.pointwise with batch_size auto vs batch_size 1 on the same queries
  grpo         two GRPO steps: TRL GRPOTrainer with VetoReward graded by rm:REWARD, set up as
               alignment.grpo.train_grpo does (vLLM colocated when vllm imports and a CUDA device exists)

Each part reports wall time, tokens/s (prompt + generated tokens for generation, real input tokens for
judging), instances/s, MFU = achieved FLOPs / peak bf16 dense FLOPs of the GPU (achieved ~ 2 N tokens for
forward passes, 6 N tokens for a training step, N = parameters less the embedding table; MFU is null on a
CPU), and peak GPU memory (torch.cuda.max_memory_allocated, reset before each part). Parts that use vLLM run
in their own process: a vLLM engine does not hand its GPU memory back within a process. Targets on one
H100-class GPU at full size: judge track >= 40% MFU, batched reward-model scoring >= 5x one-by-one, vLLM
generation >= 3x the transformers backend's tokens/s; elsewhere they are "not measured". See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                      ("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                      ("VLLM_LOGGING_LEVEL", "WARNING")):
    os.environ.setdefault(_name, _value)

PARTS = ("judge_hf", "judge_rm", "policy_hf", "policy_vllm", "rm_scoring", "grpo")
VLLM_PARTS = ("policy_vllm", "grpo")  # run in a child process when they use vLLM
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results-gpu.json"
QUICK_OUTPUT = Path(tempfile.gettempdir()) / "promedical-gpu-check-quick.json"

#: Dense bf16 tensor-core peaks in TFLOPS by CUDA device name; the first substring that matches wins.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H800", 989.0), ("H200 NVL", 835.0),
    ("H200", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
)
#: The GPUs the targets are set for.
H100_CLASS = ("H100", "H200", "H800")
TARGETS = {"judge_mfu": 0.40, "rm_batched_speedup": 5.0, "vllm_speedup": 3.0}


@dataclass(frozen=True)
class Size:
    """What one mode builds and runs."""

    model: dict[str, int]  # Qwen3Config sizes, the same for the causal LM and the reward model
    judge_items: int | None  # first N sample-bench items for the judge track (None: all 66)
    policy_items: int | None
    max_new_tokens: int
    max_model_len: int  # vLLM context (prompts are <= 266 tokens)
    rm_queries: int
    grpo_steps: int
    grpo_batch: int  # completions per step
    grpo_generations: int  # completions per prompt
    grpo_completion_tokens: int
    child_timeout_s: int


SIZES = {
    # ~1.31 B parameters (Qwen2.5-1.5B's shape with Qwen3's blocks): large enough for real GPU efficiency, and the
    # whole check fits in ~8 minutes on one H100/H200
    "full": Size(model=dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                            num_key_value_heads=2, head_dim=128, max_position_embeddings=4096),
                 judge_items=None, policy_items=None, max_new_tokens=256, max_model_len=2048, rm_queries=512,
                 grpo_steps=2, grpo_batch=16, grpo_generations=8, grpo_completion_tokens=256, child_timeout_s=300),
    # ~3.7 M parameters: every code path but vLLM's end to end on 2 CPU cores in about a minute
    "quick": Size(model=dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=2, head_dim=64, max_position_embeddings=4096),
                  judge_items=3, policy_items=2, max_new_tokens=16, max_model_len=1024, rm_queries=16,
                  grpo_steps=2, grpo_batch=4, grpo_generations=2, grpo_completion_tokens=16, child_timeout_s=180),
}


@dataclass(frozen=True)
class Context:
    """Everything a part needs; written to the work folder for the parts that run in a child process."""

    mode: str
    workdir: str
    causal: str
    reward: str
    device: str
    batch_size: int | None
    matmul_parameters: int  # N of the FLOP estimate (parameters less the embedding table), the causal LM's;
    # the reward model's differs by its 1-label head
    peak_tflops: float | None
    peak_reason: str | None  # why MFU is null, when it is

    @property
    def size(self) -> Size:
        return SIZES[self.mode]

    def options(self):
        from promedical.bench.models.loading import ModelOptions

        return ModelOptions(device=self.device, dtype="auto", batch_size=self.batch_size)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


# --------------------------------------------------------------------------------------------- measuring


def cuda_in_use() -> bool:
    """Whether this process has initialised CUDA (a vLLM engine starts faster when it has not: it can fork)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_initialized()


def synchronize() -> None:
    import torch

    if cuda_in_use():
        torch.cuda.synchronize()


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``function`` took, GPU work included, and its value."""
    gc.collect()
    synchronize()
    start = time.perf_counter()
    value = function()
    synchronize()
    return time.perf_counter() - start, value


def reset_memory() -> None:
    import torch

    gc.collect()
    if cuda_in_use():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def memory_figures() -> dict[str, float | None]:
    """This process's peak allocated GPU memory since the last reset, and the device's used memory now (which
    counts other processes, such as a vLLM engine core); null on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return {"peak_gpu_memory_gib": None, "device_memory_used_gib": None}
    free, total = torch.cuda.mem_get_info()
    return {"peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "device_memory_used_gib": (total - free) / 2**30}


def mfu(ctx: Context, flops: float, seconds: float) -> dict[str, Any]:
    """Achieved FLOPs and MFU against the GPU's bf16 peak (null, with the reason, when there is no peak)."""
    if ctx.peak_tflops is None or seconds <= 0:
        return {"flops": flops, "achieved_tflops": flops / seconds / 1e12 if seconds > 0 else None, "mfu": None,
                "mfu_reason": ctx.peak_reason}
    achieved = flops / seconds / 1e12
    return {"flops": flops, "achieved_tflops": achieved, "mfu": achieved / ctx.peak_tflops}


def rates(tokens: int, instances: int, seconds: float) -> dict[str, float]:
    return {"tokens": tokens, "tokens_per_s": tokens / seconds, "instances": instances,
            "instances_per_s": instances / seconds}


class ForwardMeter:
    """Counts a model's forward passes, their real (attention-mask) and padded input tokens, and the time
    spent inside them (synchronised on a GPU; the judges wait for every batch's result anyway)."""

    def __init__(self, model):
        self.calls = self.tokens = self.padded = 0
        self.seconds = 0.0
        self._start = 0.0
        self.handles = [model.register_forward_pre_hook(self._before, with_kwargs=True),
                        model.register_forward_hook(self._after)]

    def _before(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]
        mask = kwargs.get("attention_mask")
        self.calls += 1
        self.padded += ids.numel()
        self.tokens += int(mask.sum()) if mask is not None else ids.numel()
        synchronize()
        self._start = time.perf_counter()

    def _after(self, module, args, output) -> None:
        synchronize()
        self.seconds += time.perf_counter() - self._start

    def close(self) -> dict[str, Any]:
        for handle in self.handles:
            handle.remove()
        return {"forward_calls": self.calls, "input_tokens": self.tokens, "padded_tokens": self.padded,
                "padding_efficiency": self.tokens / self.padded if self.padded else None,
                "forward_s": self.seconds}


def warm_up(model, device: str) -> None:
    """One forward pass of a realistic shape, so CUDA context, cuBLAS and kernel choice are not timed."""
    import torch

    ids = torch.randint(3, model.config.vocab_size, (4, 256), device=device)
    with torch.inference_mode():
        model(input_ids=ids)
    synchronize()


# --------------------------------------------------------------------------------------------- checkpoints


def build_models(workdir: Path, mode: str, device: str) -> tuple[dict[str, Any], str, str]:
    """The random-weight Qwen3 causal LM and reward model (same sizes, bench.tiny's tokenizer), saved in bf16 on
    a GPU and float32 on a CPU; their description and paths."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    from promedical.bench.tiny import build_tokenizer

    sizes = SIZES[mode].model
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = build_tokenizer()
    config = Qwen3Config(vocab_size=len(tokenizer), tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, num_labels=1, **sizes)
    described: dict[str, Any] = {}
    for seed, (name, cls) in enumerate((("causal", Qwen3ForCausalLM), ("reward", Qwen3ForSequenceClassification))):
        torch.manual_seed(seed)
        with torch.device(device):
            model = cls(config).to(dtype)
        path = workdir / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        total = sum(p.numel() for p in model.parameters())
        described[name] = {"architecture": cls.__name__, "parameters": total,
                           "matmul_parameters": total - model.get_input_embeddings().weight.numel(),
                           "path": str(path)}
        del model
        reset_memory()
    return ({**sizes, "vocab_size": len(tokenizer), "tie_word_embeddings": True, "dtype": str(dtype).split(".")[-1],
             "weights": "random (seeded)", **described}, described["causal"]["path"], described["reward"]["path"])


def peak_for(device_name: str | None, override: float | None) -> tuple[float | None, str | None]:
    """The bf16 dense peak (TFLOPS) for a CUDA device name, or None and the reason."""
    if override:
        return override, None
    if device_name is None:
        return None, "no GPU: MFU is measured against a GPU's bf16 peak"
    for name, tflops in PEAK_BF16_TFLOPS:
        if name.lower() in device_name.lower():
            return tflops, None
    return None, f"no bf16 peak tabulated for {device_name!r}; pass --peak-tflops"


def machine_info() -> dict[str, Any]:
    import torch

    from promedical.bench.results import software_versions

    extra = ("trl", "vllm", "accelerate", "tokenizers", "deepspeed")
    versions = software_versions(extra)
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
        "versions": {name: versions.get(name) for name in ("promedical-bench", "torch", "transformers", *extra)},
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=properties.total_memory / 2**30, cuda_version=torch.version.cuda,
                    capability=f"{properties.major}.{properties.minor}")
    return info


# --------------------------------------------------------------------------------------------- parts


def sample_items(limit: int | None) -> list:
    from promedical.bench.datasets import load_bench

    items = load_bench("sample")
    return items[:limit] if limit is not None else items


def run_config(model: str):
    from promedical.bench.runner import RunConfig

    return RunConfig(model=model, progress=False)


def judge_part(ctx: Context, prefix: str) -> dict[str, Any]:
    """The judge track over the sample bench with ``hf:`` (causal) or ``rm:`` (reward model) judge."""
    from promedical.bench.cache import Cache
    from promedical.bench.models.registry import build_judge
    from promedical.bench.runner import run_judge_track

    items = sample_items(ctx.size.judge_items)
    judge = build_judge(f"{prefix}:{ctx.causal if prefix == 'hf' else ctx.reward}", ctx.options())
    load_s, model = timed(lambda: (judge.tokenizer, judge.model)[1])
    warm_up(model, ctx.device)
    meter = ForwardMeter(model)
    reset_memory()
    wall, (track, samples, computed) = timed(lambda: run_judge_track(judge, items, Cache(None), run_config(judge.spec)))
    forwards = meter.close()
    flops = 2.0 * ctx.matmul_parameters * forwards["input_tokens"]
    forward_only = mfu(ctx, flops, forwards["forward_s"])
    return {"judge": type(judge).__name__, "dtype": str(model.dtype).split(".")[-1], "items": len(items),
            "batch_size": ctx.batch_size or "auto", "load_s": load_s, "wall_s": wall,
            **rates(forwards["input_tokens"], len(samples), wall), **forwards, **mfu(ctx, flops, wall),
            "mfu_forward_only": forward_only["mfu"], "model_calls": computed,
            "unknown_verdicts": track.counts["unknown"], **memory_figures()}


class GenerationMeter:
    """Wraps a generator's ``generate`` (seconds, answers) and its backend's call (prompt and generated tokens:
    HF ``model.generate`` or vLLM ``llm.chat``)."""

    def __init__(self, generator, pad_token_id: int | None = None):
        self.seconds = 0.0
        self.answers = self.prompt_tokens = self.generated_tokens = 0
        outer = generator.generate

        def generate(items):
            start = time.perf_counter()
            answers = outer(items)
            synchronize()
            self.seconds += time.perf_counter() - start
            self.answers += len(answers)
            return answers

        generator.generate = generate
        if hasattr(generator, "llm"):  # vLLM
            chat = generator.llm.chat

            def counted_chat(*args, **kwargs):
                outputs = chat(*args, **kwargs)
                self.prompt_tokens += sum(len(o.prompt_token_ids) for o in outputs)
                self.generated_tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
                return outputs

            generator.llm.chat = counted_chat
        else:
            model_generate = generator.model.generate

            def counted_generate(**kwargs):
                output = model_generate(**kwargs)
                prompt = kwargs["input_ids"].shape[1]
                self.prompt_tokens += int(kwargs["attention_mask"].sum())
                self.generated_tokens += int((output[:, prompt:] != pad_token_id).sum())
                return output

            generator.model.generate = counted_generate


def vllm_generator(ctx: Context, decoding):
    """VLLMGenerator as `run --backend vllm --gpu-memory-utilization 0.6 --max-model-len N` builds it: the engine
    leaves room for the reward-model grader in the same process."""
    from dataclasses import asdict

    from promedical.bench.models.vllm import VLLMGenerator, VLLMOptions

    engine = VLLMOptions(tensor_parallel_size=1, gpu_memory_utilization=0.6, max_model_len=ctx.size.max_model_len)
    return VLLMGenerator(ctx.causal, decoding, engine, "auto"), asdict(engine)


def policy_part(ctx: Context, backend: str) -> dict[str, Any]:
    """The policy track over the sample bench: HFGenerator or VLLMGenerator answers, rm:REWARD grades."""
    from promedical.bench.cache import Cache
    from promedical.bench.generating import Decoding
    from promedical.bench.models.registry import build_generator, build_judge
    from promedical.bench.runner import run_policy_track

    if backend == "vllm":
        usable, reason = vllm_imports()
        if not usable or ctx.device != "cuda":
            return {"skipped": reason or "skipped: no CUDA device"}
    items = sample_items(ctx.size.policy_items)
    decoding = Decoding(max_new_tokens=ctx.size.max_new_tokens, temperature=0.0, seed=0)
    extra: dict[str, Any] = {}
    if backend == "vllm":
        load_s, (generator, extra) = timed(lambda: vllm_generator(ctx, decoding))
        meter = GenerationMeter(generator)
    else:
        generator = build_generator(f"hf:{ctx.causal}", None, ctx.options(), decoding)
        load_s, model = timed(lambda: generator.model)
        warm_up(model, ctx.device)
        meter = GenerationMeter(generator, generator.tokenizer.pad_token_id)
    grader = build_judge(f"rm:{ctx.reward}", ctx.options())
    grader_load_s, grader_model = timed(lambda: (grader.tokenizer, grader.model)[1])
    warm_up(grader_model, ctx.device)
    reset_memory()
    wall, (track, samples, _) = timed(lambda: run_policy_track(generator, grader, items, Cache(None),
                                                               run_config(generator.spec), decoding))
    tokens = meter.prompt_tokens + meter.generated_tokens
    verdicts = sum(len(s.judgements) for s in samples)
    grading_s = wall - meter.seconds
    return {"generator": type(generator).__name__, "generator_options": extra, "items": len(items),
            "max_new_tokens": decoding.max_new_tokens, "temperature": decoding.temperature,
            "batch_size": ctx.batch_size or "auto", "load_s": load_s, "grader_load_s": grader_load_s, "wall_s": wall,
            "generation_s": meter.seconds, **rates(tokens, meter.answers, meter.seconds),
            "prompt_tokens": meter.prompt_tokens, "generated_tokens": meter.generated_tokens,
            "generated_tokens_per_s": meter.generated_tokens / meter.seconds,
            **mfu(ctx, 2.0 * ctx.matmul_parameters * tokens, meter.seconds),
            "grading": {"verdicts": verdicts, "seconds": grading_s, "verdicts_per_s": verdicts / grading_s},
            "generation_failures": track.counts["generation_failures"], **memory_figures()}


def rm_scoring_part(ctx: Context) -> dict[str, Any]:
    """RewardModelJudge.pointwise on the same queries with batch_size auto and batch_size 1, each judge fresh
    (empty reward memo) and sharing the loaded weights. Top-level figures are the batched side's."""
    from promedical.bench.judging import PointwiseQuery
    from promedical.bench.models.loading import ModelOptions
    from promedical.bench.models.reward import RewardModelJudge
    from promedical.bench.runner import judge_instances

    instances = [i.query for i in judge_instances(sample_items(None))[0] if isinstance(i.query, PointwiseQuery)]
    queries = instances[::max(1, len(instances) // ctx.size.rm_queries)][:ctx.size.rm_queries]
    batched = RewardModelJudge(ctx.reward, ctx.options())
    load_s, model = timed(lambda: (batched.tokenizer, batched.model)[1])
    warm_up(model, ctx.device)
    sides: dict[str, dict[str, Any]] = {}
    rewards: dict[str, list[float]] = {}
    for name, batch_size in (("batched", ctx.batch_size), ("one_by_one", 1)):
        judge = batched if name == "batched" else RewardModelJudge(
            ctx.reward, ModelOptions(device=ctx.device, dtype="auto", batch_size=batch_size))
        judge.__dict__.update(tokenizer=batched.tokenizer, model=model)  # the loaded weights, not a second copy
        meter = ForwardMeter(model)
        reset_memory()
        seconds, verdicts = timed(lambda judge=judge: judge.pointwise(queries))
        forwards = meter.close()
        rewards[name] = [v.raw["reward"] for v in verdicts]
        sides[name] = {"batch_size": batch_size or "auto", "wall_s": seconds,
                       **rates(forwards["input_tokens"], len(queries), seconds), **forwards,
                       **mfu(ctx, 2.0 * ctx.matmul_parameters * forwards["input_tokens"], seconds), **memory_figures()}
    difference = max(abs(a - b) for a, b in zip(rewards["batched"], rewards["one_by_one"], strict=True))
    return {**sides["batched"], "load_s": load_s, "queries": len(queries), "one_by_one": sides["one_by_one"],
            "speedup": sides["one_by_one"]["wall_s"] / sides["batched"]["wall_s"],
            "max_abs_reward_diff": difference, "dtype": str(model.dtype).split(".")[-1]}


def grpo_part(ctx: Context) -> dict[str, Any]:
    """Two GRPO steps as alignment.grpo.train_grpo sets them up (GRPORecipe → GRPOConfig, prompt_dataset,
    VetoReward over an rm: judge), built here so that each step and the reward can be timed."""
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOTrainer

    from promedical.alignment.config import GRPORecipe, resolve_data
    from promedical.alignment.grpo import prompt_dataset
    from promedical.alignment.reward import VetoReward
    from promedical.bench.models.loading import load_tokenizer
    from promedical.bench.models.registry import build_judge

    size, cuda = ctx.size, ctx.device == "cuda"
    usable, reason = vllm_imports()
    use_vllm = usable and cuda
    recipe = GRPORecipe(
        output_dir=str(Path(ctx.workdir) / "grpo"), policy_model=ctx.causal, judge=f"rm:{ctx.reward}",
        prompts=f"synthetic:train:{size.grpo_steps * size.grpo_batch // size.grpo_generations}:2",
        num_generations=size.grpo_generations, batch_size=size.grpo_batch, max_steps=size.grpo_steps,
        max_completion_length=size.grpo_completion_tokens, kl_coefficient=0.0, learning_rate=1e-6,
        use_vllm=use_vllm, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3,
        vllm_max_model_length=size.max_model_len, bf16=cuda, use_cpu=not cuda, logging_steps=1,
        judge_batch_size=ctx.batch_size)
    calls: list[tuple[float, float]] = []
    steps: list[dict[str, float]] = []

    class TimedVetoReward(VetoReward):
        def __call__(self, *args, **kwargs):
            start = time.perf_counter()
            rewards = super().__call__(*args, **kwargs)
            calls.append((start, time.perf_counter() - start))
            return rewards

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            synchronize()
            self.begin, self.tokens = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            synchronize()
            end = time.perf_counter()
            steps.append({"step_s": end - self.begin, "tokens": state.num_input_tokens_seen - self.tokens,
                          "reward_s": sum(s for start, s in calls if self.begin <= start <= end)})

    items = resolve_data(recipe.prompts)
    judge = build_judge(recipe.judge, ctx.options())
    reward = TimedVetoReward(judge, recipe.alpha, recipe.beta, recipe.lam, recipe.scenario_weights)
    reset_memory()
    setup_s, trainer = timed(lambda: GRPOTrainer(
        model=recipe.policy_model, reward_funcs=[reward], args=recipe.trl_config(),
        train_dataset=prompt_dataset(items), processing_class=load_tokenizer(recipe.policy_model),
        callbacks=[StepTimer()]))
    trainer.remove_callback(PrinterCallback)  # the per-step log dicts; the figures are in the results
    warm_up(judge.model, ctx.device)  # the reward model's weights load now, not inside the first step
    wall, _ = timed(trainer.train)
    steady = steps[1:] or steps  # the first step pays for warm-up (vLLM's first batch, allocator growth)
    seconds, tokens = sum(s["step_s"] for s in steady), sum(s["tokens"] for s in steady)
    completions = size.grpo_batch * len(steady)
    return {"use_vllm": use_vllm, "vllm_mode": "colocate" if use_vllm else None,
            "vllm": "used" if use_vllm else reason or "skipped: no CUDA device",
            "steps": trainer.state.global_step, "completions_per_step": size.grpo_batch,
            "num_generations": size.grpo_generations, "max_completion_length": size.grpo_completion_tokens,
            "policy_dtype": str(trainer.model.dtype).split(".")[-1], "bf16_autocast": cuda, "setup_s": setup_s,
            "wall_s": wall, "per_step": steps, "figures_over": "steps after the first" if steps[1:] else "first step",
            **rates(tokens, completions, seconds), **mfu(ctx, 6.0 * ctx.matmul_parameters * tokens, seconds),
            **memory_figures()}


def vllm_imports() -> tuple[bool, str]:
    """Whether ``import vllm`` works here, and if not why."""
    if importlib.util.find_spec("vllm") is None:
        return False, "skipped: vllm not installed"
    try:
        import vllm  # noqa: F401
    except Exception as error:  # a broken install: any error at import
        return False, f"skipped: vllm does not import ({first_line(error)})"
    return True, ""


PART_FUNCTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "judge_hf": lambda ctx: judge_part(ctx, "hf"),
    "judge_rm": lambda ctx: judge_part(ctx, "rm"),
    "policy_hf": lambda ctx: policy_part(ctx, "hf"),
    "policy_vllm": lambda ctx: policy_part(ctx, "vllm"),
    "rm_scoring": rm_scoring_part,
    "grpo": grpo_part,
}


def run_part(name: str, ctx: Context) -> dict[str, Any]:
    """One part, in this process or (vLLM on a GPU) in a child; a failure is recorded, not raised."""
    child = name in VLLM_PARTS and ctx.device == "cuda" and importlib.util.find_spec("vllm") is not None
    started = time.perf_counter()
    try:
        result = run_child(name, ctx) if child else PART_FUNCTIONS[name](ctx)
    except Exception as error:  # recorded with its traceback; the other parts still run
        result = {"error": first_line(error), "traceback": traceback.format_exc()}
    finally:
        reset_memory()
    result["process"] = "child" if child else "main"
    result["part_s"] = time.perf_counter() - started
    return result


def run_child(name: str, ctx: Context) -> dict[str, Any]:
    workdir = Path(ctx.workdir)
    (workdir / "context.json").write_text(json.dumps(asdict(ctx)))
    output, log_file = workdir / f"{name}.json", workdir / f"{name}.log"
    with log_file.open("w") as stream:
        try:
            code = subprocess.run([sys.executable, __file__, "--part", name, "--workdir", str(workdir)],
                                  stdout=stream, stderr=subprocess.STDOUT, timeout=ctx.size.child_timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    tail = log_file.read_text(errors="replace").splitlines()[-40:]
    if code is None:
        return {"error": f"timed out after {ctx.size.child_timeout_s} s", "log_tail": tail}
    if not output.exists():
        return {"error": f"child process exited with code {code} and no result", "log_tail": tail}
    return json.loads(output.read_text())


def child_main(name: str, workdir: Path) -> int:
    """``--part NAME``: run one part from the context the parent wrote; the result goes to WORKDIR/NAME.json."""
    ctx = Context(**json.loads((workdir / "context.json").read_text()))
    try:
        result = PART_FUNCTIONS[name](ctx)
    except Exception as error:
        result = {"error": first_line(error), "traceback": traceback.format_exc()}
    (workdir / f"{name}.json").write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a vLLM engine can hang or crash on it


# --------------------------------------------------------------------------------------------- report


def check_targets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """PASS/FAIL for each target, or "not measured" and why (quick sizes, not an H100-class GPU, a part
    skipped, failed or not run)."""
    parts, machine = results["parts"], results["machine"]
    gpu = machine.get("gpu") or ""
    if results["mode"] != "full":
        scope = "quick sizes"
    elif not any(name in gpu for name in H100_CLASS):
        scope = f"not an H100-class GPU ({gpu or 'no GPU'})"
    else:
        scope = None

    def value(part: str, key: str) -> tuple[float | None, str | None]:
        entry = parts.get(part)
        if entry is None:
            return None, f"{part} not run"
        if "skipped" in entry or "error" in entry:
            return None, f"{part} {entry.get('skipped') or 'failed: ' + entry['error']}"
        return entry.get(key), None if entry.get(key) is not None else entry.get("mfu_reason")

    def vllm_ratio() -> tuple[float | None, str | None]:
        (hf, why_hf), (vllm, why_vllm) = value("policy_hf", "tokens_per_s"), value("policy_vllm", "tokens_per_s")
        return (vllm / hf, None) if hf and vllm else (None, why_vllm or why_hf)

    checks = {
        "judge_hf_mfu": ("judge track, hf: judge, MFU (bf16)", value("judge_hf", "mfu"), TARGETS["judge_mfu"]),
        "judge_rm_mfu": ("judge track, rm: judge, MFU (bf16)", value("judge_rm", "mfu"), TARGETS["judge_mfu"]),
        "rm_batched_speedup": ("rm scoring, batched / one-by-one", value("rm_scoring", "speedup"),
                               TARGETS["rm_batched_speedup"]),
        "vllm_speedup": ("policy generation tokens/s, vllm / hf", vllm_ratio(), TARGETS["vllm_speedup"]),
    }
    out = {}
    for key, (label, (measured, why), threshold) in checks.items():
        reason = why or scope
        result = "not measured" if reason else ("PASS" if measured >= threshold else "FAIL")
        out[key] = {"label": label, "value": measured, "target": f">= {threshold:g}", "result": result,
                    **({"reason": reason} if reason else {})}
    return out


def _number(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_report(results: dict[str, Any]) -> None:
    header = ("part", "wall s", "tokens/s", "instances/s", "MFU", "peak GiB", "note")
    rows = []
    for name, entry in results["parts"].items():
        if "skipped" in entry or "error" in entry:
            rows.append((name, _number(entry.get("part_s"), ".1f"), "", "", "", "",
                         entry.get("skipped") or f"error: {entry['error']}"))
            continue
        generation = "tokens/s, instances/s over generation; instances = answers"
        note = {"policy_hf": generation, "policy_vllm": generation,
                "rm_scoring": f"batched; {entry.get('speedup', 0):.1f}x one-by-one",
                "grpo": f"{entry.get('steps')} steps, vllm {entry.get('vllm')}"}.get(name, "instances = judged")
        rows.append((name, _number(entry["wall_s"], ".1f"), _number(entry["tokens_per_s"], ",.0f"),
                     _number(entry["instances_per_s"], ",.1f"), _number(entry["mfu"], ".1%"),
                     _number(entry.get("peak_gpu_memory_gib"), ".1f"), note))
    table(header, rows)
    print()
    table(("target", "value", "target", "result"),
          [(t["label"], _number(t["value"], ".3g"), t["target"], t["result"] + (f" ({t['reason']})"
                                                                                 if "reason" in t else ""))
           for t in results["targets"].values()])


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from promedical.bench.cli.console import table as layout

    print(layout(header, [tuple(str(cell) for cell in row) for row in rows], indent=0))


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="GPU device check: wall time, tokens/s, instances/s, MFU and peak GPU memory of the judge "
                    "track (hf: and rm: judges), the policy track (transformers and vLLM generators), batched vs "
                    "one-by-one reward-model scoring and two GRPO steps, on random-weight Qwen3 checkpoints built "
                    "locally (no Hub). Full size needs one CUDA GPU (<= 8 min on an H100/H200); --quick runs on a "
                    "CPU. Exit code 1 when a part fails (its error is in the JSON); targets that FAIL do not.",
        epilog="Targets (one H100-class GPU, full size): judge track MFU >= 40%; batched reward-model scoring "
               ">= 5x one-by-one; vLLM generation >= 3x the transformers backend's tokens/s.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (a ~3.7 M-parameter model, a few items): every code path on a CPU in about "
                             "a minute (vLLM's only on a GPU); figures are a smoke check, not measurements")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"JSON output (default {DEFAULT_OUTPUT.relative_to(ROOT)}; with --quick {QUICK_OUTPUT}, "
                             "so a CPU run never overwrites GPU figures)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=None, help="run only these parts")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size of the judges and the transformers generator (default: auto, as `run`)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak in TFLOPS, for a GPU missing from the built-in table")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # internal: a part in a child process
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside transformers and TRL
    for name in ("promedical", "transformers", "trl", "vllm", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.part:
        return child_main(args.part, args.workdir)
    try:
        return check(args)
    except Exception as error:  # one clear line; no traceback for a setup failure
        print(f"gpu_check: error: {first_line(error)}", file=sys.stderr)
        return 1


def check(args: argparse.Namespace) -> int:
    import torch

    mode = "quick" if args.quick else "full"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if mode == "full" and device != "cuda":
        raise RuntimeError("the full-size check needs a CUDA GPU and none is visible; use --quick on a CPU")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    output = args.output or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    selected = args.only or list(PARTS)
    started = time.perf_counter()
    machine = machine_info()
    peak, peak_reason = peak_for(machine.get("gpu"), args.peak_tflops)
    where = machine.get("gpu") or f"CPU ({machine['cpu_count']} cores)"
    log(f"{mode} check on {where}; bf16 peak {_number(peak, 'g')} TFLOPS")
    with tempfile.TemporaryDirectory(prefix="promedical-gpu-check-") as tmp:
        build_s, (model, causal, reward) = timed(lambda: build_models(Path(tmp), mode, device))
        log(f"built the checkpoints in {build_s:.0f} s: Qwen3 {model['causal']['parameters'] / 1e6:,.1f} M "
            f"parameters ({model['dtype']}), reward model alike")
        ctx = Context(mode=mode, workdir=tmp, causal=causal, reward=reward, device=device,
                      batch_size=args.batch_size, matmul_parameters=model["causal"]["matmul_parameters"],
                      peak_tflops=peak, peak_reason=peak_reason)
        parts: dict[str, dict[str, Any]] = {}
        for name in PARTS:
            if name in selected:
                parts[name] = entry = run_part(name, ctx)
                figures = entry.get("skipped") or (f"error: {entry['error']}" if "error" in entry else
                                                   f"{entry['wall_s']:.1f} s, {entry['tokens_per_s']:,.0f} tokens/s, "
                                                   f"MFU {_number(entry['mfu'], '.1%')}")
                log(f"{name}: {figures}")
    size = asdict(SIZES[mode])
    results: dict[str, Any] = {
        "mode": mode, "command": " ".join(["bash benchmarks/gpu_check.sh", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine, "device": device,
        "peak_bf16_tflops": peak, "peak_reason": peak_reason,
        "flops_estimate": "2 N tokens per forward pass, 6 N tokens per training step; N = parameters less the "
                          "embedding table; attention score FLOPs left out",
        "sizes": {**size, "model": model, "build_s": build_s}, "parts": parts,
    }
    results["targets"] = check_targets(results)
    results["total_s"] = time.perf_counter() - started
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print_report(results)
    print(f"\n{mode} check in {results['total_s']:.0f} s; figures in {output}")
    failed = [f"{name} ({entry['error']})" for name, entry in parts.items() if "error" in entry]
    if failed:
        print(f"gpu_check: error: {len(failed)} part(s) failed: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
