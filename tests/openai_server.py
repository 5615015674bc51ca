"""A real OpenAI-compatible chat-completions server for tests and benchmarks (127.0.0.1, ephemeral port).

    with OpenAIServer(Policy(faults={"http_500": 0.2}), latency=0.0) as server:
        judge = OpenAIJudge("m", base_url=server.base_url)

It answers ``POST /v1/chat/completions`` (HTTP/1.1, keep-alive) deterministically (:func:`deterministic_answer`,
or the policy's own ``answer(messages)``), can inject faults deterministically per (request content, attempt
number), records every request, and stops by itself after ``max_requests`` requests or ``max_seconds`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

POINTWISE_MARK = "Does the reply satisfy the criterion?"
PAIRWISE_MARK = "Which reply better satisfies"

#: Faults the server can inject, by name.
FAULTS = (
    "http_500",       # 500 with an error body
    "http_503",       # 503 without Retry-After
    "http_429",       # 429 with Retry-After: 0
    "http_429_wait",  # 429 with Retry-After: 1
    "http_400",       # 400: permanent, must not be retried
    "stall",          # no answer for stall_seconds (longer than the client's timeout), then the connection closes
    "truncated",      # 200 whose JSON body is cut in half (Content-Length matches the cut body)
    "short_read",     # 200 announcing the full length, sending half, then closing the connection
    "not_json",       # 200 with an HTML body
    "no_choices",     # 200 JSON without "choices"
    "bad_reply",      # 200 well-formed, but the content is prose instead of the asked-for JSON (new prose each attempt)
)

Answer = Callable[[list[dict[str, Any]]], "dict[str, Any] | str"]
FaultRule = Callable[[str, int], "str | None"]


def request_key(messages: list[dict[str, Any]]) -> str:
    """Identifies a request's content (all its messages), so that attempts of one request can be counted."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:20]


def _last_user(messages: list[dict[str, Any]]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def deterministic_answer(messages: list[dict[str, Any]]) -> dict[str, Any] | str:
    """Pointwise prompt: ``criteria_met`` from the prompt's sha256; pairwise: ``preferred`` A, B or tie from
    it; anything else (a policy prompt): the text ``reply to: <last user message>``."""
    prompt = _last_user(messages)
    digest = hashlib.sha256(prompt.encode()).digest()
    if PAIRWISE_MARK in prompt:
        return {"explanation": "deterministic test answer", "preferred": ("A", "B", "tie")[digest[0] % 3]}
    if POINTWISE_MARK in prompt:
        return {"explanation": "deterministic test answer", "criteria_met": digest[0] % 2 == 0}
    return f"reply to: {prompt}"


def _unit(key: str, attempt: int) -> float:
    return int(hashlib.sha256(f"{key}:{attempt}".encode()).hexdigest()[:13], 16) / 16 ** 13


@dataclass(frozen=True)
class Policy:
    """How the server answers. ``faults`` maps fault names (:data:`FAULTS`) to the fraction of requests that
    get them, drawn deterministically from (content, attempt), on attempts ``0 .. fault_attempts-1`` only (so a
    client with ``max_retries >= fault_attempts`` always gets through); or it is a function
    ``(key, attempt) -> fault name or None``. ``api_key``: when set, any other bearer token gets 401."""

    answer: Answer = deterministic_answer
    faults: Mapping[str, float] | FaultRule = field(default_factory=dict)
    fault_attempts: int = 1
    stall_seconds: float = 5.0
    api_key: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.faults):
            unknown = set(self.faults) - set(FAULTS)
            if unknown:
                raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
            if sum(self.faults.values()) > 1.0 + 1e-9:
                raise ValueError("fault fractions add up to more than 1")

    def fault(self, key: str, attempt: int) -> str | None:
        if callable(self.faults):
            return self.faults(key, attempt)
        if attempt >= self.fault_attempts:
            return None
        draw, total = _unit(key, attempt), 0.0
        for name, fraction in self.faults.items():
            total += fraction
            if draw < total:
                return name
        return None


@dataclass(frozen=True)
class Record:
    """One request as the server saw it."""

    key: str
    attempt: int
    fault: str | None
    time: float
    body: dict[str, Any]
    authorization: str | None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])


class _Request:
    """One parsed HTTP request."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body


class _Connection:
    """The writing side of one client connection."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.close = False

    async def send(self, status: int, body: bytes, content_type: str = "application/json",
                   headers: Mapping[str, str] | None = None, length: int | None = None) -> None:
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}",
                 f"Content-Length: {len(body) if length is None else length}",
                 f"Connection: {'close' if self.close else 'keep-alive'}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()

    async def send_json(self, status: int, value: Any, headers: Mapping[str, str] | None = None) -> None:
        await self.send(status, json.dumps(value).encode(), headers=headers)


class OpenAIServer:
    """The server: an asyncio loop in a background thread while the context is open (see the module
    docstring). One loop serves every connection, so hundreds of concurrent requests cost no threads."""

    IDLE_SECONDS = 30.0  # an idle keep-alive connection is closed after this long

    def __init__(self, policy: Policy | None = None, *, latency: float = 0.0, max_requests: int = 10000,
                 max_seconds: float = 120.0):
        self.policy = policy or Policy()
        self.latency, self.max_requests, self.max_seconds = latency, max_requests, max_seconds
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._attempts: dict[str, int] = {}
        self._in_flight = 0
        self.max_in_flight = 0
        self.connections = 0  # TCP connections accepted: a client that keeps its connections alive opens few
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._answers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="openai-server-answer")

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="openai-server")
        self._thread.start()
        if not self._ready.wait(10) or self._port is None:
            raise RuntimeError(f"the test server did not start: {self._error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - reported by start()
            self._error = error
        finally:
            self._stopped.set()
            self._ready.set()
            self._answers.shutdown(wait=False, cancel_futures=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[Any]] = set()
        writers: set[asyncio.StreamWriter] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            writers.add(writer)
            with self._lock:
                self.connections += 1
            try:
                await self._serve(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                pass
            finally:
                tasks.discard(task)
                writers.discard(writer)
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.max_seconds)
        except asyncio.TimeoutError:
            pass
        self._stop.set()
        server.close()  # no new connections; requests in flight get their answers (stalls end at once)
        deadline = time.monotonic() + 5.0
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._stopped.set()
        for writer in list(writers):  # idle keep-alive connections: closed under the client's feet
            writer.transport.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def stop(self) -> None:
        """Stop (idempotent) and wait for the serving thread to end."""
        if self._loop is not None and self._stop is not None and not self._stopped.is_set():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop has already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def port(self) -> int:
        assert self._port is not None, "the server is not started"
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ what it saw

    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def attempts(self, key: str | None = None) -> int | dict[str, int]:
        """Requests seen for one content key, or for every key."""
        with self._lock:
            return self._attempts.get(key, 0) if key is not None else dict(self._attempts)

    def faulted(self, attempt: int | None = None) -> dict[str, list[str]]:
        """Fault names injected per content key (optionally only on one attempt number)."""
        result: dict[str, list[str]] = {}
        for record in self.records:
            if record.fault is not None and (attempt is None or record.attempt == attempt):
                result.setdefault(record.key, []).append(record.fault)
        return result

    # ------------------------------------------------------------------ serving

    async def _read_request(self, reader: asyncio.StreamReader) -> _Request | None:
        line = await asyncio.wait_for(reader.readline(), self.IDLE_SECONDS)
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""  # a client gone mid-body: IncompleteReadError
        return _Request(method, path, headers, body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._stop is not None
        while True:
            request = await self._read_request(reader)
            if request is None:
                return
            connection = _Connection(writer)
            connection.close = request.headers.get("connection", "").lower() == "close"
            await self._handle(request, connection)
            if connection.close:
                return

    async def _handle(self, request: _Request, connection: _Connection) -> None:
        assert self._stop is not None
        if request.method != "POST" or request.path.rstrip("/") != "/v1/chat/completions":
            await connection.send_json(404, {"error": {"message": f"no route {request.method} {request.path}"}})
            return
        if self._stop.is_set():
            connection.close = True
            await connection.send_json(503, {"error": {"message": "server stopping"}})
            return
        authorization = request.headers.get("authorization")
        if self.policy.api_key is not None and authorization != f"Bearer {self.policy.api_key}":
            await connection.send_json(401, {"error": {"message": "Incorrect API key provided",
                                                       "type": "invalid_api_key"}})
            return
        try:
            body = json.loads(request.body)
            messages = body["messages"]
            if not isinstance(messages, list):
                raise TypeError("messages is not a list")
        except (ValueError, KeyError, TypeError):
            await connection.send_json(400, {"error": {"message": "body must be JSON with a messages list"}})
            return
        key = request_key(messages)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            fault = self.policy.fault(key, attempt)
            self._records.append(Record(key, attempt, fault, time.monotonic(), body, authorization))
            if len(self._records) >= self.max_requests:
                self._stop.set()
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            await self._respond(connection, body, key, attempt, fault)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _respond(self, connection: _Connection, body: dict[str, Any], key: str, attempt: int,
                       fault: str | None) -> None:
        assert self._stop is not None and self._loop is not None
        if fault == "stall":
            try:
                await asyncio.wait_for(self._stop.wait(), self.policy.stall_seconds)
            except asyncio.TimeoutError:
                pass
            connection.close = True
            return
        if fault in ("http_500", "http_503", "http_400"):
            status = int(fault[5:])
            await connection.send_json(status, {"error": {"message": f"injected {status}", "type": "server_error"}})
            return
        if fault in ("http_429", "http_429_wait"):
            wait = "1" if fault == "http_429_wait" else "0"
            await connection.send_json(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                                       {"Retry-After": wait})
            return
        if fault == "not_json":
            await connection.send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        completion: dict[str, Any] = {"id": f"chatcmpl-{key}-{attempt}", "object": "chat.completion",
                                      "created": 0, "model": body.get("model", "")}
        if fault == "no_choices":
            await connection.send_json(200, completion)
            return
        if fault == "bad_reply":
            content = f"I think the reply is fine (attempt {attempt + 1})."  # differs, as a sampling server's would
        else:  # the answer function may block (tests sleep in it): off the loop
            answer = await self._loop.run_in_executor(self._answers, self.policy.answer, body["messages"])
            content = answer if isinstance(answer, str) else json.dumps(answer)
        completion["choices"] = [{"index": 0, "message": {"role": "assistant", "content": content},
                                  "finish_reason": "stop"}]
        completion["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        data = json.dumps(completion).encode()
        if fault == "truncated":
            await connection.send(200, data[: len(data) // 2])
        elif fault == "short_read":
            connection.close = True
            await connection.send(200, data[: len(data) // 2], length=len(data))
        else:
            await connection.send(200, data)
