"""The OpenAI-compatible backends against a real HTTP server on 127.0.0.1 (tests/openai_server.py)."""

from __future__ import annotations

import gc
import itertools
import json
import socket
import threading
import time

import httpx
import pytest

from promedical.bench.datasets import load_bench
from promedical.bench.judging import PairwiseQuery, PointwiseQuery, Verdict
from promedical.bench.models.api import (
    PAIRWISE_SYSTEM,
    POINTWISE_SYSTEM,
    ApiError,
    BadReply,
    ChatClient,
    ChatRequest,
    Failure,
    OpenAIGenerator,
    OpenAIJudge,
    _error_message,
    parse_json_object,
    parse_pairwise,
    parse_pointwise,
)
from promedical.bench.models.registry import build_judge
from promedical.bench.schema import BenchItem
from tests.openai_server import FAULTS, OpenAIServer, Policy, deterministic_answer, request_key

FAST = {"base_delay": 0.01, "max_delay": 0.05}
#: Client timeout in the runs with stalls (the server stalls 6 s): short, yet far above a loaded machine's latency.
STALL_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def items():
    return load_bench("sample")


@pytest.fixture(scope="module")
def pointwise_queries(items) -> list[PointwiseQuery]:
    queries = [PointwiseQuery(item, criterion, response.text)
               for item in items for response in item.responses[:2] for criterion in item.rubric[:3]]
    return queries[:120]


@pytest.fixture(scope="module")
def pairwise_queries(items) -> list[PairwiseQuery]:
    queries = [PairwiseQuery(item, criterion, item.responses[0].text, item.responses[1].text)
               for item in items if len(item.responses) >= 2 for criterion in item.rubric[:2]]
    return queries[:40]


def expected_pointwise(query: PointwiseQuery) -> str:
    met = deterministic_answer([{"role": "user", "content": query.render()}])["criteria_met"]
    return "met" if met else "not_met"


def expected_pairwise(query: PairwiseQuery) -> str:
    shown = deterministic_answer([{"role": "user", "content": query.render(swap=False)}])["preferred"]
    swapped = deterministic_answer([{"role": "user", "content": query.render(swap=True)}])["preferred"]
    first = {"A": "a", "B": "b", "tie": "tie"}[shown]
    second = {"A": "b", "B": "a", "tie": "tie"}[swapped]  # reply A of the swapped prompt is response b
    return first if first == second else "tie"


def judge_key(system: str, prompt: str) -> str:
    """The server's content key of a judge request."""
    return request_key([{"role": "system", "content": system}, {"role": "user", "content": prompt}])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------------------------- parsing


def test_reply_parsing_is_robust():
    assert parse_json_object('```json\n{"criteria_met": true}\n```') == {"criteria_met": True}
    assert parse_json_object('Sure! {not json} then {"a": {"b": 1}} and {"c": 2}') == {"a": {"b": 1}}
    assert parse_pointwise('{"explanation": "x", "criteria_met": false}')[0] is False
    assert parse_pairwise('```\n{"preferred": "b"}\n```')[0] == "B"
    assert parse_pairwise('{"preferred": "Tie"}')[0] == "tie"
    for bad in ('{"criteria_met": "yes"}', '{"criteria_met": 1}', "Yes", '{"explanation": "no verdict"}'):
        with pytest.raises(BadReply):
            parse_pointwise(bad)
    with pytest.raises(BadReply):
        parse_pairwise('{"preferred": "C"}')


# --------------------------------------------------------------------------------------------- judge


def test_fault_free_pointwise_equals_server_answers(pointwise_queries, monkeypatch):
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        judge = build_judge("openai:test-model")
        assert isinstance(judge, OpenAIJudge)
        assert (judge.spec, judge.kind) == ("openai:test-model", "api")
        assert judge.identity == f"openai:test-model@{server.base_url}"
        verdicts = judge.pointwise(pointwise_queries)
        records = server.records
    assert [v.decision for v in verdicts] == [expected_pointwise(q) for q in pointwise_queries]
    assert {v.decision for v in verdicts} == {"met", "not_met"}
    for verdict in verdicts:
        assert verdict.score == (1.0 if verdict.decision == "met" else 0.0)
        assert parse_pointwise(verdict.raw["content"])[0] == (verdict.decision == "met")
        Verdict.from_json(verdict.to_json())  # cacheable
    assert len(records) == len(pointwise_queries)  # one attempt each
    body = records[0].body
    assert body["model"] == "test-model" and body["temperature"] == 0 and body["max_tokens"] == 512
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert records[0].authorization == "Bearer sk-test"


RETRIED_FAULTS = {name: 0.06 for name in FAULTS if name != "http_400"}


def test_faults_with_enough_retries_give_the_fault_free_verdicts(pointwise_queries, pairwise_queries):
    with OpenAIServer() as server:
        judge = OpenAIJudge("m", base_url=server.base_url, timeout=STALL_TIMEOUT, **FAST)
        clean_points, clean_pairs = judge.pointwise(pointwise_queries), judge.pairwise(pairwise_queries)
    policy = Policy(faults=RETRIED_FAULTS, fault_attempts=2, stall_seconds=6.0)
    with OpenAIServer(policy) as server:
        # Two faulted attempts per request at most; retries beyond that are slack for a loaded machine.
        judge = OpenAIJudge("m", base_url=server.base_url, timeout=STALL_TIMEOUT, max_retries=4, **FAST)
        points, pairs = judge.pointwise(pointwise_queries), judge.pairwise(pairwise_queries)
        faulted = server.faulted()
        seen = {fault for faults in faulted.values() for fault in faults}
    assert seen == set(RETRIED_FAULTS), "every fault type was injected at least once"
    assert sum(len(f) for f in faulted.values()) > 40
    assert [v.decision for v in points] == [v.decision for v in clean_points]
    assert [v.decision for v in pairs] == [v.decision for v in clean_pairs]
    assert [v.decision for v in pairs] == [expected_pairwise(q) for q in pairwise_queries]
    assert [v.score for v in pairs] == [v.score for v in clean_pairs]


def test_too_few_retries_leave_exactly_the_faulted_ones_unknown(pointwise_queries):
    policy = Policy(faults={name: 0.04 for name in FAULTS}, fault_attempts=1, stall_seconds=6.0)
    with OpenAIServer(policy) as server:
        judge = OpenAIJudge("m", base_url=server.base_url, timeout=STALL_TIMEOUT, max_retries=0, **FAST)
        verdicts = judge.pointwise(pointwise_queries)
        faulted = server.faulted(attempt=0)
        attempts = server.attempts()
    assert 0 < len(faulted) < len(pointwise_queries)
    for query, verdict in zip(pointwise_queries, verdicts, strict=True):
        key = judge_key(POINTWISE_SYSTEM, query.render())
        assert attempts[key] == 1
        if key in faulted:
            assert verdict.decision == "unknown" and verdict.score is None, faulted[key]
            assert verdict.raw["attempts"] == 1 and verdict.raw["error"]
        else:
            assert verdict.decision == expected_pointwise(query)


def test_http_400_is_permanent_and_not_retried(pointwise_queries):
    queries = pointwise_queries[:10]
    policy = Policy(faults=lambda key, attempt: "http_400")
    with OpenAIServer(policy) as server:
        judge = OpenAIJudge("m", base_url=server.base_url, max_retries=5, **FAST)
        verdicts = judge.pointwise(queries)
        assert server.count == len(queries)
    assert all(v.decision == "unknown" and v.raw["attempts"] == 1 and "400" in v.raw["error"] for v in verdicts)


def test_retry_after_is_honoured(pointwise_queries):
    query = pointwise_queries[0]
    policy = Policy(faults=lambda key, attempt: {0: "http_429_wait", 1: "http_429"}.get(attempt))
    with OpenAIServer(policy) as server:
        judge = OpenAIJudge("m", base_url=server.base_url, max_retries=3, base_delay=0.01, max_delay=0.02)
        [verdict] = judge.pointwise([query])
        records = server.records
    assert verdict.decision == expected_pointwise(query)
    assert [r.attempt for r in records] == [0, 1, 2]
    assert records[1].time - records[0].time >= 1.0  # Retry-After: 1, although backoff alone is 0.01 s
    assert records[2].time - records[1].time < 0.5  # Retry-After: 0


def test_pairwise_position_bias_is_cancelled(pairwise_queries):
    with OpenAIServer(Policy(answer=lambda messages: {"explanation": "first!", "preferred": "A"})) as server:
        verdicts = OpenAIJudge("m", base_url=server.base_url, **FAST).pairwise(pairwise_queries)
        assert server.count == 2 * len(pairwise_queries)
    assert all(v.decision == "tie" and v.score == 0.5 for v in verdicts)
    assert all(v.raw["preferred_ab"] == "a" and v.raw["preferred_ba"] == "b" for v in verdicts)


def test_pairwise_consistent_preference_and_failed_order(pairwise_queries):
    query = pairwise_queries[0]

    def prefer_response_a(messages):  # a consistent judge: always the same response, wherever it is shown
        prompt = messages[-1]["content"]
        return {"preferred": "A" if prompt.index(query.response_a) < prompt.index(query.response_b) else "B"}

    with OpenAIServer(Policy(answer=prefer_response_a)) as server:
        [verdict] = OpenAIJudge("m", base_url=server.base_url, **FAST).pairwise([query])
    assert (verdict.decision, verdict.score) == ("a", 1.0)
    assert set(verdict.raw) >= {"content_ab", "content_ba"}

    swapped = judge_key(PAIRWISE_SYSTEM, query.render(swap=True))
    with OpenAIServer(Policy(faults=lambda key, attempt: "http_500" if key == swapped else None)) as server:
        [verdict] = OpenAIJudge("m", base_url=server.base_url, max_retries=1, **FAST).pairwise([query])
    assert verdict.decision == "unknown" and verdict.score is None
    assert "500" in verdict.raw["error_ba"] and "content_ab" in verdict.raw and verdict.raw["attempts"] == 2


# --------------------------------------------------------------------------------------------- whole-run errors


def test_unreachable_server_raises_one_line_api_error(pointwise_queries):
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    judge = OpenAIJudge("m", base_url=base_url, max_retries=2, **FAST)
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        judge.pointwise(pointwise_queries)
    message = str(caught.value)
    assert message == f"cannot reach OPENAI_BASE_URL={base_url}: connection refused"
    assert time.monotonic() - started < 10


def test_refused_key_raises_api_error_naming_the_key(pointwise_queries):
    with OpenAIServer(Policy(api_key="sk-right")) as server:
        with pytest.raises(ApiError) as wrong:
            OpenAIJudge("m", base_url=server.base_url, api_key="sk-wrong", concurrency=4, **FAST).pointwise(
                pointwise_queries)
        assert server.count <= 8  # aborted, not every query tried
        with pytest.raises(ApiError) as missing:
            OpenAIJudge("m", base_url=server.base_url, api_key="", **FAST).pointwise(pointwise_queries[:3])
        verdicts = OpenAIJudge("m", base_url=server.base_url, api_key="sk-right").pointwise(pointwise_queries[:3])
    for error in (wrong, missing):
        text = str(error.value)
        assert "OPENAI_API_KEY" in text and "401" in text and "\n" not in text
    assert "not set" in str(missing.value)
    assert all(v.decision != "unknown" for v in verdicts)


@pytest.mark.parametrize("base_url", ["localhost:8000/v1", "ftp://example.org/v1", "http:///v1"])
def test_a_base_url_that_is_not_http_is_refused_before_any_request(base_url):
    with pytest.raises(ApiError) as caught:
        OpenAIJudge("m", base_url=base_url)
    assert str(caught.value) == f"OPENAI_BASE_URL={base_url} is not an http:// or https:// URL"


def test_the_proxy_comes_from_the_environment(pointwise_queries, monkeypatch):
    """HTTP_PROXY is used (here a dead one: the server is unreachable through it) unless NO_PROXY exempts the host."""
    dead = f"http://127.0.0.1:{free_port()}"
    with OpenAIServer() as server:
        monkeypatch.setenv("HTTP_PROXY", dead)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with pytest.raises(ApiError, match="cannot reach"):
            OpenAIJudge("m", base_url=server.base_url, max_retries=0, **FAST).pointwise(pointwise_queries[:2])
        assert server.count == 0
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        verdicts = OpenAIJudge("m", base_url=server.base_url, **FAST).pointwise(pointwise_queries[:2])
        assert server.count == 2
    assert [v.decision for v in verdicts] == [expected_pointwise(q) for q in pointwise_queries[:2]]


def test_not_found_raises_api_error(pointwise_queries):
    with OpenAIServer() as server:
        root = server.base_url.removesuffix("/v1")  # a base URL without /v1: POST /chat/completions is 404
        with pytest.raises(ApiError) as caught:
            OpenAIJudge("m", base_url=root, concurrency=2, **FAST).pointwise(pointwise_queries)
    text = str(caught.value)
    assert "404" in text and "OPENAI_BASE_URL" in text and "\n" not in text


def test_connection_errors_after_the_server_answered_are_per_request(pointwise_queries):
    """A server that goes away mid-run (max_requests reached) fails the remaining requests, no ApiError."""
    with OpenAIServer(max_requests=5) as server:
        judge = OpenAIJudge("m", base_url=server.base_url, concurrency=1, max_retries=1, **FAST)
        verdicts = judge.pointwise(pointwise_queries[:12])
    decisions = [v.decision for v in verdicts]
    assert decisions[:5] == [expected_pointwise(q) for q in pointwise_queries[:5]]
    assert decisions[6:] == ["unknown"] * 6


# --------------------------------------------------------------------------------------------- generator, client


def _item(messages: list[dict[str, str]]) -> BenchItem:
    """A prompt-only bench item asking ``messages``."""
    return BenchItem(id="q", category="c", specialty="s", messages=messages,
                     rubric=[{"id": "p", "type": "proficiency", "text": "t"}])


def test_generator_keeps_input_order_under_concurrency():
    def slow_first(messages):
        index = int(messages[-1]["content"].split()[-1])
        time.sleep(0.01 * (20 - index))  # the first inputs finish last
        return f"answer {index}"

    conversations = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"}]
                     for i in range(20)]
    with OpenAIServer(Policy(answer=slow_first)) as server:
        generator = OpenAIGenerator("policy-model", base_url=server.base_url, concurrency=8, seed=7,
                                    max_new_tokens=64)
        texts = generator.generate([_item(c) for c in conversations])
        assert server.max_in_flight > 1
        body = server.records[0].body
    assert texts == [f"answer {i}" for i in range(20)]
    assert body["seed"] == 7 and body["max_tokens"] == 64
    assert generator.identity.startswith(f"openai:policy-model@{server.base_url}")


def test_generator_returns_none_for_failed_requests():
    conversations = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    failing = request_key(conversations[2])
    with OpenAIServer(Policy(faults=lambda key, attempt: "http_500" if key == failing else None)) as server:
        texts = OpenAIGenerator("m", base_url=server.base_url, max_retries=2, **FAST).generate(
            [_item(c) for c in conversations])
        assert server.attempts(failing) == 3
    assert texts == ["reply to: q0", "reply to: q1", None, "reply to: q3", "reply to: q4", "reply to: q5"]


def test_client_reports_failures_and_bounds_concurrency():
    requests = [ChatRequest("m", [{"role": "user", "content": f"x{i}"}]) for i in range(64)]
    with OpenAIServer(latency=0.1) as server:
        client = ChatClient(base_url=server.base_url, concurrency=32, **FAST)
        started = time.monotonic()
        outcomes = client.complete(requests)
        elapsed = time.monotonic() - started
        assert server.max_in_flight <= 32
    assert outcomes == [f"reply to: x{i}" for i in range(64)]
    assert elapsed < 2.0  # 64 requests of 0.1 s, 32 at a time: about 0.2 s (serially 6.4 s)
    with OpenAIServer(Policy(faults=lambda key, attempt: "no_choices")) as server:
        [failure] = ChatClient(base_url=server.base_url, max_retries=1, **FAST).complete(requests[:1])
    assert failure == Failure("bad body: no choices[0].message.content", 2, 200)


def _api_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "promedical-api"}


def test_consecutive_batches_share_one_loop_thread_and_its_warm_connections():
    """The runner calls a backend chunk after chunk: one loop thread and one connection pool serve them all."""
    requests = [ChatRequest("m", [{"role": "user", "content": f"x{i}"}]) for i in range(8)]
    expected = [f"reply to: x{i}" for i in range(8)]
    before = _api_threads()
    with OpenAIServer(latency=0.05) as server:
        client = ChatClient(base_url=server.base_url, concurrency=4, **FAST)
        for _ in range(5):
            assert client.complete(requests) == expected
        assert server.connections == 4  # a new client per batch opens 4 per batch: 20
        [thread] = _api_threads() - before
        client.close()
        assert not thread.is_alive()
        assert client.complete(requests) == expected  # reopened after close()
        assert server.connections == 8
        [thread] = _api_threads() - before
        del client
        gc.collect()
        thread.join(timeout=5)
        assert not thread.is_alive()  # a collected client stops its loop thread


def test_a_refused_reply_given_again_word_for_word_is_final_and_kept(pointwise_queries, pairwise_queries):
    """A deterministic server repeats a reply the parser refuses: asking again is waste. Replies that differ
    are retried up to max_retries; either way the verdict's raw output keeps the last reply."""
    points, pair = pointwise_queries[:4], pairwise_queries[:1]
    with OpenAIServer(Policy(answer=lambda messages: "I cannot grade this.")) as server:
        judge = OpenAIJudge("m", base_url=server.base_url, max_retries=5, **FAST)
        verdicts, [pair_verdict] = judge.pointwise(points), judge.pairwise(pair)
        assert server.count == 2 * (len(points) + 2)
    for verdict in verdicts:
        assert verdict.decision == "unknown"
        assert verdict.raw == {"error": "bad reply: no JSON object in the reply", "attempts": 2,
                               "content": "I cannot grade this."}
    assert pair_verdict.decision == "unknown"
    assert pair_verdict.raw["content_ab"] == pair_verdict.raw["content_ba"] == "I cannot grade this."
    assert pair_verdict.raw["attempts_ab"] == pair_verdict.raw["attempts_ba"] == 2
    numbers = itertools.count()
    with OpenAIServer(Policy(answer=lambda messages: f"Let me think ({next(numbers)})...")) as server:
        [verdict] = OpenAIJudge("m", base_url=server.base_url, max_retries=3, **FAST).pointwise(points[:1])
        assert server.count == 4
    assert verdict.raw == {"error": "bad reply: no JSON object in the reply", "attempts": 4,
                           "content": "Let me think (3)..."}


@pytest.mark.parametrize(("body", "message"), [
    ({"error": {"message": "Incorrect  API key", "type": "invalid_api_key"}}, "Incorrect API key"),
    ({"error": "model overloaded"}, "model overloaded"),
    ({"object": "error", "message": "context too long"}, "context too long"),
    ({"detail": "Server is pinned to 'a'; requested 'b'."}, "Server is pinned to 'a'; requested 'b'."),
    ({"detail": [{"loc": ["body", "messages"], "msg": "Field required"}]}, "Field required"),
    ({"unexpected": 1}, '{"unexpected":1}'),
])
def test_error_messages_in_every_servers_shape(body, message):
    """OpenAI, vLLM/TGI-style and FastAPI (`transformers serve`) error bodies all give their message."""
    assert _error_message(json.dumps(body, separators=(",", ":")).encode()) == message
    assert _error_message(b"<html>Bad   Gateway</html>") == "<html>Bad Gateway</html>"


def test_judge_works_from_inside_a_running_event_loop(pointwise_queries):
    """Synchronous callers inside an event loop (a notebook) are served from a worker thread."""
    import asyncio

    async def inside() -> list[Verdict]:
        return judge.pointwise(pointwise_queries[:4])

    with OpenAIServer() as server:
        judge = OpenAIJudge("m", base_url=server.base_url, **FAST)
        verdicts = asyncio.run(inside())
    assert [v.decision for v in verdicts] == [expected_pointwise(q) for q in pointwise_queries[:4]]


def test_server_stops_by_itself():
    with OpenAIServer(max_seconds=0.3) as server:
        url = f"{server.base_url}/chat/completions"
        assert httpx.post(url, json={"messages": []}).status_code == 200
        time.sleep(0.6)
        assert server.stopped
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, json={"messages": []})
