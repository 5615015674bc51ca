"""The API judge and generator against a real third-party OpenAI-compatible server: ``transformers serve`` on
127.0.0.1, on CPU, serving tiny local checkpoints (no Hub), driven through the real ``promedical-bench run``.

Two checkpoints on one server, chosen per request by the ``model`` field:

- ``policy``: the random tiny model. Greedy (as the judge asks), its every reply is newlines, so it never
  gives a JSON verdict: the judge track must count every verdict ``unknown``, keep what came back, and exit 1.
  Sampled (``--temperature 1``), it answers policy prompts with random text.
- ``judge``: a tiny model whose generation config allows one token, a whole JSON verdict, then stops: a
  constant judge ("met"; "A" in both presentation orders, so every pair is a tie).

The client talks to the server through a small counting proxy, so each test also checks how many requests
it sent per model (retries included).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from promedical.bench.datasets import load_bench
from promedical.bench.results import read_results, read_samples

pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving] (in the dev extra)")
pytestmark = pytest.mark.slow

VERDICT = '{"criteria_met": true, "preferred": "A"}'
STARTUP_SECONDS = 180


def policy_checkpoint(path: Path) -> Path:
    """The random tiny model, made to sample when a request's temperature is above 0 (``transformers serve``
    samples only when the checkpoint's generation config says ``do_sample``, as real chat checkpoints' do) and
    to end a reply at a newline (its greedy reply would otherwise run to max_tokens: ~10 s a request on CPU)."""
    from transformers import AutoTokenizer, GenerationConfig

    from promedical.bench.tiny import build_tiny_model

    build_tiny_model(path, kind="causal")
    tokenizer = AutoTokenizer.from_pretrained(path)
    [newline] = tokenizer.encode("\n")
    config = GenerationConfig.from_pretrained(path)
    config.do_sample, config.eos_token_id = True, [tokenizer.eos_token_id, newline]
    config.save_pretrained(path)
    return path


def judge_checkpoint(path: Path) -> Path:
    """A tiny model that can say nothing but :data:`VERDICT` (one added token), and ends its reply there."""
    from transformers import AutoTokenizer, GenerationConfig

    from promedical.bench.tiny import build_tiny_model

    build_tiny_model(path, kind="causal", extra_tokens=[VERDICT])
    tokenizer = AutoTokenizer.from_pretrained(path)
    [verdict] = tokenizer.encode(VERDICT)
    config = GenerationConfig.from_pretrained(path)
    config.suppress_tokens = [i for i in range(len(tokenizer)) if i != verdict]
    config.eos_token_id = [tokenizer.eos_token_id, verdict]
    config.save_pretrained(path)
    return path


class CountingProxy(ThreadingHTTPServer):
    """A pass-through HTTP proxy on 127.0.0.1 that counts the chat-completion requests sent for each model.

    Counting here, not from the server's log, keeps the test independent of what a transformers release
    chooses to log (5.25 stopped logging each request)."""

    daemon_threads = True

    def __init__(self, upstream: str):
        self.upstream, self.counts, self.lock = upstream, Counter(), threading.Lock()
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    server: CountingProxy

    def do_GET(self) -> None:
        self.forward(None)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/chat/completions"):
            with self.server.lock:
                self.server.counts[json.loads(body)["model"]] += 1
        self.forward(body)

    def forward(self, body: bytes | None) -> None:
        headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
        request = urllib.request.Request(self.server.upstream + self.path, data=body, headers=headers,
                                         method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, content_type, payload = response.status, response.headers.get("Content-Type"), response.read()
        except urllib.error.HTTPError as error:
            status, content_type, payload = error.code, error.headers.get("Content-Type"), error.read()
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # keep pytest's output clean
        pass


@dataclass(frozen=True)
class Served:
    base_url: str
    policy: Path
    judge: Path
    log: Path
    counts: Counter = field(repr=False)

    @property
    def env(self) -> dict[str, str | None]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": "sk-local"}  # the server ignores keys

    def requests(self, model: Path) -> int:
        """Chat-completion requests sent to the server for ``model`` (counted by the proxy in front of it)."""
        return self.counts[str(model)]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    root = tmp_path_factory.mktemp("serve")
    policy, judge = policy_checkpoint(root / "policy"), judge_checkpoint(root / "judge")
    port, log = free_port(), root / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu", "--log-level", "info"]
    with log.open("w") as output:
        # one torch thread: a tiny model gains nothing from two, and on a shared machine loses a lot
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=root,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"transformers serve exited ({process.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"transformers serve not up in {STARTUP_SECONDS} s:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        proxy = CountingProxy(f"http://127.0.0.1:{port}")
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            yield Served(f"{proxy.base_url}/v1", policy, judge, log, proxy.counts)
        finally:
            proxy.shutdown()
            proxy.server_close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def only_run_dir(output: Path) -> Path:
    [run_dir] = [path for path in output.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return run_dir


def test_judge_track_with_a_model_that_never_answers_in_json(served, cli, tmp_path):
    before = served.requests(served.policy)
    result = cli("run", "--model", f"openai:{served.policy}", "--track", "judge", "--limit", "1",
                     "--output-dir", str(tmp_path), env=served.env)
    assert result.code == 1, result.stderr
    run_dir = only_run_dir(tmp_path)
    samples = read_samples(run_dir)
    track = read_results(run_dir).tracks["judge"]
    assert track.counts["unknown"] == track.counts["instances"] == len(samples) > 0
    assert track.metrics["overall_accuracy"].n == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the judge track measured nothing: all {len(samples)} verdicts are unknown; "
                      f"{run_dir}/samples.jsonl holds what came back"]
    refused = "bad reply: no JSON object in the reply"
    for sample in samples:
        assert sample.decision == "unknown" and sample.correct is None and sample.score is None
        orders = [""] if sample.mode == "pointwise" else ["_ab", "_ba"]
        for order in orders:  # what came back is kept; asked once more, the greedy model said the same
            assert sample.raw[f"error{order}"] == refused and sample.raw[f"attempts{order}"] == 2
            assert sample.raw[f"content{order}"].strip() == ""
    requests = sum(1 if s.mode == "pointwise" else 2 for s in samples)
    assert served.requests(served.policy) - before == 2 * requests


def test_judge_track_with_a_constant_judge_gives_its_verdicts_and_their_accuracy(served, cli, tmp_path):
    before = served.requests(served.judge)
    result = cli("run", "--model", f"openai:{served.judge}", "--track", "judge", "--limit", "3",
                     "--output-dir", str(tmp_path), env=served.env)
    assert result.code == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    results, samples = read_results(run_dir), read_samples(run_dir)
    track = results.tracks["judge"]
    assert (results.model.kind, results.model.identity) == ("api", f"openai:{served.judge}@{served.base_url}")
    pointwise = [s for s in samples if s.mode == "pointwise"]
    pairwise = [s for s in samples if s.mode == "pairwise"]
    assert track.counts["unknown"] == 0 and pointwise and pairwise
    assert all(s.decision == "met" and s.raw == {"content": VERDICT} for s in pointwise)
    for sample in pairwise:  # "A" in both orders is a position preference, not a preference: a tie
        assert (sample.decision, sample.score) == ("tie", 0.5)
        assert (sample.raw["preferred_ab"], sample.raw["preferred_ba"]) == ("a", "b")
    # expected from the bench's own labels: right on every pointwise "met", wrong on every judged pair
    items = load_bench("sample")[:3]
    labels = [label for item in items for label in item.labels.pointwise]
    pairs = [pair for item in items for pair in item.labels.pairwise if pair.preferred != "tie"]
    assert (len(pointwise), len(pairwise)) == (len(labels), len(pairs))
    overall = track.metrics["overall_accuracy"]
    assert overall.n == len(labels) + len(pairs)
    assert overall.value == pytest.approx(sum(label.met for label in labels) / overall.n)
    assert served.requests(served.judge) - before == len(pointwise) + 2 * len(pairwise)


def test_policy_track_answers_and_grades_through_the_server(served, cli, tmp_path):
    before = served.requests(served.policy), served.requests(served.judge)
    result = cli("run", "--model", f"openai:{served.policy}", "--track", "policy",
                     "--judge", f"openai:{served.judge}", "--limit", "3", "--temperature", "1",
                     "--max-new-tokens", "16", "--output-dir", str(tmp_path), env=served.env)
    assert result.code == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    track = read_results(run_dir).tracks["policy"]
    samples = read_samples(run_dir)
    assert track.counts["generation_failures"] == track.counts["unknown_verdicts"] == 0
    answers = [s.answer for s in samples]
    assert all(isinstance(a, str) for a in answers) and any(a.strip() for a in answers), answers
    assert len(set(answers)) == len(answers)  # sampled per prompt, not one canned reply
    items = load_bench("sample")[:3]
    # every criterion "met": S1 = 1, S2 = the excellence criteria, no violation
    expected = [min(1 + 0.1 * len(item.criteria("excellence")), 1.2) / 1.2 for item in items]
    assert all(j.decision == "met" for s in samples for j in s.judgements)
    assert track.metrics["overall"].value == pytest.approx(sum(expected) / len(expected))
    assert track.metrics["safety_compliance"].value == 1.0 and track.metrics["proficiency"].value == 1.0
    criteria = sum(len(item.rubric) for item in items)
    assert (served.requests(served.policy) - before[0], served.requests(served.judge) - before[1]) == (3, criteria)
