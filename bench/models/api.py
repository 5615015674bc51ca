"""OpenAI-compatible chat-completions backends: a judge (``openai:MODEL``) and a generator for the policy track.

The server is ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``) and the key ``OPENAI_API_KEY``
(sent as ``Authorization: Bearer``; may be absent for local servers). Requests go out concurrently (at most
``concurrency`` in flight) from synchronous code, and every request is retried a bounded number of times.
Each :class:`ChatClient` keeps one event loop in a daemon thread and one ``aiohttp.ClientSession`` on it for
its whole life, so consecutive batches (the runner's chunks) reuse warm keep-alive connections instead of
paying for a new loop, client, TLS context and connections each time; :meth:`ChatClient.close` (or garbage
collection, or interpreter exit) closes them. aiohttp rather than httpx: it spends about a fifth of httpx's
CPU per request, which is what bounds throughput at high concurrency (docs/performance.md).

Retry rules (:class:`ChatClient`):

- retried, with exponential backoff and jitter (``base_delay * 2**n``, capped at ``max_delay``): connection
  errors, timeouts (``timeout`` seconds per attempt, whole response included), HTTP 429 and 5xx, bodies that
  are truncated or not JSON, bodies without a string ``choices[0].message.content``, and replies the caller's
  parser refuses (:class:`BadReply`, e.g. a judge reply without a boolean ``criteria_met``). On 429 and 503 a
  ``Retry-After`` header (seconds or an HTTP date) is honoured: the retry never comes sooner than it says.
- never retried: any other 4xx (400, 401, 403, 404, ...): they are permanent; nor a refused reply that repeats
  an earlier refused reply of the same request word for word: a deterministic server (greedy decoding, as the
  judges ask for) would only give it again. The :class:`Failure` keeps the last refused reply, so a run shows
  what came back.

Failure rules: a request that still fails is returned as a :class:`Failure` (reason, attempts, last status),
never raised, and the judges turn it into an ``unknown`` verdict, never into "not met". Two failures concern
the whole run rather than one request, and raise :class:`ApiError` (a one-line message) from the batch call:

- the server refuses the credentials (HTTP 401 or 403 on any request): the batch is aborted at once;
- HTTP 404 on any request (a wrong base URL or an unknown model, which no request of the batch would escape):
  the batch is aborted at once;
- the server cannot be reached: a request has used up its retries on connection errors (refused, DNS, connect
  timeout) while no request of the batch has had any HTTP response; the batch is aborted then, without
  waiting for every other request to use up its retries.

Once any request of a batch has had an HTTP response, later connection errors are per-request failures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import logging
import os
import random
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from promedical.bench.errors import UnavailableError
from promedical.bench.judging import PairwiseQuery, PointwiseQuery, Verdict
from promedical.bench.prompts import template_hash
from promedical.bench.schema import BenchItem

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
AUTH_STATUSES = (401, 403)
RETRY_AFTER_STATUSES = (429, 503)
#: A Retry-After longer than this is taken as this (a misbehaving server should not stall a run for hours).
MAX_RETRY_AFTER = 300.0
#: Runner chunks are this many windows of ``concurrency`` requests: through ``runner.run`` at 32 × 0.1 s, 16 kept
#: 88 % of the ideal rate, 32 kept 90 % and 64 kept 92 % (one call of 640 requests: 95 %; docs/performance.md).
CHUNK_WAVES = 64

T = TypeVar("T")


class ApiError(UnavailableError, ValueError):
    """The API cannot be used at all (unreachable server, refused key). ``str()`` is one line."""


class BadReply(ValueError):
    """Raised by a reply parser for content that does not answer the question: the request is retried."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call."""

    model: str
    messages: list[dict[str, str]]
    temperature: float = 0.0
    max_tokens: int | None = None
    seed: int | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": self.messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.seed is not None:
            body["seed"] = self.seed
        return body


@dataclass(frozen=True)
class Failure:
    """A request that failed for good: why, after how many attempts, the last HTTP status (if any) and the last
    reply the caller's parser refused (if any)."""

    reason: str
    attempts: int
    status: int | None = None
    content: str | None = None


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, reason: str, status: int | None = None, wait: float | None = None, connect: bool = False):
        super().__init__(reason)
        self.reason, self.status, self.wait, self.connect = reason, status, wait, connect


class _Permanent(Exception):
    def __init__(self, reason: str, status: int | None):
        super().__init__(reason)
        self.reason, self.status = reason, status


class _Batch:
    """State shared by the requests of one batch: whether anything got through, and why it was aborted."""

    def __init__(self) -> None:
        self.responded = False
        self.fatal: str | None = None
        self.abort = asyncio.Event()

    def stop(self, message: str) -> None:
        if self.fatal is None:
            self.fatal = message
        self.abort.set()


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, session: aiohttp.ClientSession) -> None:
    """Close ``session``'s connections and stop ``loop`` and its ``thread`` (a :class:`ChatClient`'s finalizer)."""
    if loop.is_closed():
        return
    if threading.current_thread() is thread:  # collected on its own loop: no waiting here, the sockets just close
        loop.stop()
        return
    if loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError, OSError, aiohttp.ClientError) as error:
            log.debug("closing the API client: %s", error)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
    if not loop.is_running():
        loop.close()


def _env_proxy(url: str) -> str | None:
    """The proxy for ``url`` from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``...), if any."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _connect_reason(error: BaseException) -> str:
    """A short reason for a connection error: the OS's words for the first errno in the cause chain."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            break
        number = getattr(seen, "errno", None)
        if isinstance(seen, OSError) and isinstance(number, int):
            text = seen.strerror if number < 0 and seen.strerror else os.strerror(number)
            return text.lower()
        seen = seen.__cause__ or seen.__context__
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped at MAX_RETRY_AFTER."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _error_message(body: bytes) -> str:
    """The server's own error message, shortened: OpenAI's ``{"error": {"message": ...}}``, ``{"error": ...}``,
    ``{"message": ...}`` or FastAPI's ``{"detail": ...}`` (``transformers serve``: a wrong model name, an
    unexpected field); else the body as it is."""
    message: Any = body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        error = error.get("message") if isinstance(error, dict) else error
        message = next((m for m in (error, data.get("message"), data.get("detail")) if m), message)
    if isinstance(message, list):  # FastAPI's validation errors: [{"loc": [...], "msg": ...}, ...]
        message = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in message)
    text = " ".join(str(message or "").split())
    return text[:200]


class ChatClient:
    """Concurrent chat-completions calls with bounded retries (see the module docstring for the rules)."""

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, max_retries: int = 5,
                 base_delay: float = 0.5, max_delay: float = 20.0, timeout: float = 60.0, concurrency: int = 32):
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiError(f"OPENAI_BASE_URL={self.base_url} is not an http:// or https:// URL")
        self.proxy = _env_proxy(self.base_url)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self.max_retries, self.base_delay, self.max_delay = max_retries, base_delay, max_delay
        self.timeout, self.concurrency = timeout, concurrency
        self._random = random.Random()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (0-based): half fixed, half random, capped at ``max_delay``."""
        delay = min(self.max_delay, self.base_delay * 2 ** retry)
        return delay / 2 + self._random.uniform(0, delay / 2)

    def _started(self) -> tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession, asyncio.Semaphore]:
        """The client's event loop, HTTP session and concurrency bound: started on first use, kept until
        :meth:`close`."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="promedical-api", daemon=True)
                thread.start()
                session = asyncio.run_coroutine_threadsafe(self._open(), loop).result()
                self._loop, self._session = loop, session
                self._semaphore = asyncio.Semaphore(self.concurrency)  # bounds every batch in flight together
                # not a method: the finalizer must not keep the client alive
                self._finalizer = weakref.finalize(self, _shutdown, loop, thread, session)
            assert self._session is not None and self._semaphore is not None
            return self._loop, self._session, self._semaphore

    async def _open(self) -> aiohttp.ClientSession:
        """The HTTP session, made on the loop it serves (aiohttp requires that). ``timeout`` bounds a whole
        attempt, response body included. No ``trust_env``: it would look the proxy (and ``.netrc``) up in a
        worker thread on every request; the proxy is looked up once instead (:func:`_env_proxy`)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout)
        return aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=self.concurrency),
                                     timeout=timeout)

    def close(self) -> None:
        """Close the connections and stop the loop thread; a later call starts them again."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._loop = self._session = self._semaphore = self._finalizer = None

    def complete(self, requests: Sequence[ChatRequest], parse: Callable[[str], T] | None = None
                 ) -> list[T | str | Failure]:
        """Run every request (concurrently) and return, in input order, each one's content (or ``parse`` of
        it) or its :class:`Failure`. Raises :class:`ApiError` for a refused key, a 404 (wrong base URL or model)
        or an unreachable server (see the module docstring). Safe to call from a thread that runs an event loop
        (a notebook): the work runs on the client's own loop."""
        if not requests:
            return []
        loop, session, semaphore = self._started()
        future = asyncio.run_coroutine_threadsafe(self._batch(session, semaphore, requests, parse), loop)
        try:
            return future.result()
        except BaseException:  # Ctrl-C included: the requests still in flight are cancelled, not left running
            future.cancel()
            raise

    async def _batch(self, session: aiohttp.ClientSession, semaphore: asyncio.Semaphore,
                     requests: Sequence[ChatRequest], parse: Callable[[str], T] | None) -> list[T | str | Failure]:
        batch = _Batch()
        tasks = [self._one(session, semaphore, batch, request, parse) for request in requests]
        outcomes = await asyncio.gather(*tasks)
        if batch.fatal is not None:
            raise ApiError(batch.fatal)
        failed = [o for o in outcomes if isinstance(o, Failure)]
        if failed:
            log.warning("%d of %d requests to %s failed; first: %s", len(failed), len(outcomes), self.url,
                        failed[0].reason)
        return outcomes

    async def _one(self, session: aiohttp.ClientSession, semaphore: asyncio.Semaphore, batch: _Batch,
                   request: ChatRequest, parse: Callable[[str], T] | None) -> T | str | Failure:
        attempts, refused = 0, None  # refused: the last reply content ``parse`` refused
        while True:
            if batch.abort.is_set():
                return Failure(f"aborted: {batch.fatal}", attempts, content=refused)
            attempts += 1
            content = None
            try:
                async with semaphore:
                    if batch.abort.is_set():
                        return Failure(f"aborted: {batch.fatal}", attempts - 1, content=refused)
                    content = await self._attempt(session, batch, request)
                return parse(content) if parse is not None else content
            except _Permanent as error:
                if error.status in AUTH_STATUSES:
                    batch.stop(self._auth_message(error))
                elif error.status == 404:
                    batch.stop(f"POST {self.url} for model {request.model!r} gave {error.reason}: "
                               "check OPENAI_BASE_URL and the model name")
                return Failure(error.reason, attempts, error.status, refused)
            except (_Retry, BadReply) as error:
                repeated = isinstance(error, BadReply) and refused is not None and content == refused
                if isinstance(error, BadReply):
                    refused = content
                retry = error if isinstance(error, _Retry) else _Retry(f"bad reply: {error}", 200)
                if repeated or attempts > self.max_retries:
                    if retry.connect and not batch.responded:
                        batch.stop(f"cannot reach OPENAI_BASE_URL={self.base_url}: {retry.reason}")
                    return Failure(retry.reason, attempts, retry.status, refused)
                delay = retry.wait if retry.wait is not None else self.backoff(attempts - 1)
                log.debug("attempt %d failed (%s); retrying in %.2f s", attempts, retry.reason, delay)
                if delay > 0:
                    try:
                        await asyncio.wait_for(batch.abort.wait(), delay)
                    except asyncio.TimeoutError:
                        pass

    async def _attempt(self, session: aiohttp.ClientSession, batch: _Batch, request: ChatRequest) -> str:
        try:
            async with session.post(self.url, json=request.payload(), proxy=self.proxy) as response:
                status, retry_after, body = response.status, response.headers.get("Retry-After"), await response.read()
        except asyncio.TimeoutError as error:  # aiohttp's timeouts, connect and whole attempt
            connect = isinstance(error, aiohttp.ConnectionTimeoutError)
            raise _Retry(f"timeout after {self.timeout:g} s", connect=connect) from None
        except aiohttp.ClientConnectorError as error:  # refused, DNS, unreachable
            raise _Retry(_connect_reason(error), connect=True) from None
        except aiohttp.ClientError as error:  # a connection closed mid-body, reset, a short read...
            raise _Retry(f"transport error: {_connect_reason(error)}") from None
        batch.responded = True
        if status == 429 or status >= 500:
            wait = _retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
            if wait is not None:
                wait += self._random.uniform(0, min(0.1, self.base_delay))  # spread the herd, never sooner
            raise _Retry(f"HTTP {status}: {_error_message(body)}".rstrip(": "), status, wait)
        if status >= 400:
            raise _Permanent(f"HTTP {status}: {_error_message(body)}".rstrip(": "), status)
        try:
            data = json.loads(body)
        except ValueError:
            raise _Retry("bad body: not JSON (truncated?)", status) from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise _Retry("bad body: no choices[0].message.content", status)
        return content

    def _auth_message(self, error: _Permanent) -> str:
        key = "OPENAI_API_KEY is not set" if not self.api_key else "check OPENAI_API_KEY"
        return f"OPENAI_BASE_URL={self.base_url} refused the API key ({error.reason}): {key}"


# --------------------------------------------------------------------------------------------- parsing


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in a reply (code fences and surrounding prose allowed); :class:`BadReply` if none."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else stripped[3:]
        stripped = stripped.rsplit("```", 1)[0]
    decoder = json.JSONDecoder()
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(stripped, start)
        except ValueError:
            start = stripped.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = stripped.find("{", start + 1)
    raise BadReply("no JSON object in the reply")


def parse_pointwise(text: str) -> tuple[bool, str]:
    """(criteria_met, raw text); :class:`BadReply` without a boolean ``criteria_met``."""
    value = parse_json_object(text).get("criteria_met")
    if not isinstance(value, bool):
        raise BadReply("no boolean criteria_met in the reply")
    return value, text


def parse_pairwise(text: str) -> tuple[str, str]:
    """("A" | "B" | "tie", raw text); :class:`BadReply` without one of those in ``preferred``."""
    value = parse_json_object(text).get("preferred")
    choice = {"a": "A", "b": "B", "tie": "tie"}.get(value.strip().lower()) if isinstance(value, str) else None
    if choice is None:
        raise BadReply("no preferred of A, B or tie in the reply")
    return choice, text


POINTWISE_SYSTEM = (
    "You grade an AI assistant's reply against one rubric criterion, as a careful physician would. "
    "Instead of a bare Yes or No, answer with only a JSON object: "
    '{"explanation": "<one or two sentences>", "criteria_met": true or false}. '
    "criteria_met is true only when the reply fully satisfies the criterion."
)
PAIRWISE_SYSTEM = (
    "You compare two AI assistant replies against one rubric criterion, as a careful physician would. "
    "Instead of a bare A or B, answer with only a JSON object: "
    '{"explanation": "<one or two sentences>", "preferred": "A" or "B" or "tie"}. '
    'Use "tie" only when neither reply satisfies the criterion better than the other.'
)


# --------------------------------------------------------------------------------------------- judge


class OpenAIJudge:
    """Judge through an OpenAI-compatible server. Pointwise: one JSON verdict per query. Pairwise: both
    presentation orders; agreeing orders give their decision, disagreeing ones "tie", a failed one "unknown";
    the score is P(a preferred), the mean of the two orders' indicators (tie = 0.5)."""

    kind = "api"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None, max_retries: int = 5,
                 concurrency: int = 32, timeout: float = 60.0, base_delay: float = 0.5, max_delay: float = 20.0,
                 max_tokens: int = 512, seed: int | None = None):
        self.model, self.max_tokens, self.seed = model, max_tokens, seed
        self.client = ChatClient(base_url=base_url, api_key=api_key, max_retries=max_retries, base_delay=base_delay,
                                 max_delay=max_delay, timeout=timeout, concurrency=concurrency)
        self.base_url = self.client.base_url
        self.spec = f"openai:{model}"
        self.identity = f"openai:{model}@{self.base_url}"
        self.system = {"pointwise": POINTWISE_SYSTEM, "pairwise": PAIRWISE_SYSTEM}
        self.template_hash = template_hash({
            "system_pointwise": self.system["pointwise"], "system_pairwise": self.system["pairwise"],
            "pairwise_orders": "both presentations; agreeing orders decide, disagreeing ones tie",
            "temperature": 0.0, "max_tokens": max_tokens, "seed": seed,
        })
        #: Queries per runner chunk (one cache commit, the most work an interruption loses): every chunk ends by
        #: waiting for its slowest request with the window draining, so a chunk is CHUNK_WAVES full windows.
        self.chunk_size = CHUNK_WAVES * concurrency

    def _request(self, system: str, prompt: str) -> ChatRequest:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        return ChatRequest(self.model, messages, 0.0, self.max_tokens, self.seed)

    def pointwise(self, queries: Sequence[PointwiseQuery]) -> list[Verdict]:
        requests = [self._request(self.system["pointwise"], q.render()) for q in queries]
        verdicts = []
        for outcome in self.client.complete(requests, parse_pointwise):
            if isinstance(outcome, Failure):
                verdicts.append(Verdict("unknown", None, _failure_raw(outcome)))
                continue
            met, text = outcome
            verdicts.append(Verdict("met" if met else "not_met", 1.0 if met else 0.0, {"content": text}))
        return verdicts

    def pairwise(self, queries: Sequence[PairwiseQuery]) -> list[Verdict]:
        requests = [self._request(self.system["pairwise"], q.render(swap=swap))
                    for q in queries for swap in (False, True)]
        outcomes = self.client.complete(requests, parse_pairwise)
        verdicts = []
        for index in range(len(queries)):
            verdicts.append(_pair_verdict(outcomes[2 * index], outcomes[2 * index + 1]))
        return verdicts


def _failure_raw(failure: Failure) -> dict[str, Any]:
    """A failed request as a verdict's raw output: the reason, the attempts and the refused reply, if any."""
    raw: dict[str, Any] = {"error": failure.reason, "attempts": failure.attempts}
    if failure.content is not None:
        raw["content"] = failure.content
    return raw


_AS_SHOWN = {"A": "a", "B": "b", "tie": "tie"}
_SWAPPED = {"A": "b", "B": "a", "tie": "tie"}
_P_A = {"a": 1.0, "b": 0.0, "tie": 0.5}


def _pair_verdict(first: Any, second: Any) -> Verdict:
    """Combine the (a, b) and (b, a) presentations of one pair."""
    if isinstance(first, Failure) or isinstance(second, Failure):
        raw: dict[str, Any] = {}
        for name, outcome in (("ab", first), ("ba", second)):
            if isinstance(outcome, Failure):
                raw.update({f"{key}_{name}": value for key, value in _failure_raw(outcome).items()})
            else:
                raw[f"content_{name}"] = outcome[1]
        failure = first if isinstance(first, Failure) else second
        raw["error"], raw["attempts"] = failure.reason, failure.attempts
        return Verdict("unknown", None, raw)
    shown, swapped = _AS_SHOWN[first[0]], _SWAPPED[second[0]]
    decision = shown if shown == swapped else "tie"
    score = (_P_A[shown] + _P_A[swapped]) / 2
    raw = {"content_ab": first[1], "content_ba": second[1], "preferred_ab": shown, "preferred_ba": swapped}
    return Verdict(decision, score, raw)


# --------------------------------------------------------------------------------------------- generator


class OpenAIGenerator:
    """Answer bench conversations with an API model (policy track): ``generate`` returns, in input order,
    each reply or None where the request failed after its retries."""

    def __init__(self, model: str, *, max_new_tokens: int = 512, temperature: float = 0.0, seed: int | None = None,
                 concurrency: int = 32, max_retries: int = 5, timeout: float = 60.0, base_delay: float = 0.5,
                 max_delay: float = 20.0, base_url: str | None = None, api_key: str | None = None):
        self.model, self.max_new_tokens, self.temperature, self.seed = model, max_new_tokens, temperature, seed
        self.client = ChatClient(base_url=base_url, api_key=api_key, max_retries=max_retries, base_delay=base_delay,
                                 max_delay=max_delay, timeout=timeout, concurrency=concurrency)
        self.base_url = self.client.base_url
        self.spec = f"openai:{model}"
        self.identity = f"openai:{model}@{self.base_url}|t={temperature:g}|max={max_new_tokens}|seed={seed}"
        self.chunk_size = CHUNK_WAVES * concurrency

    def generate(self, items: Sequence[BenchItem]) -> list[str | None]:
        requests = [ChatRequest(self.model, [m.model_dump() for m in item.messages], self.temperature,
                                self.max_new_tokens, self.seed) for item in items]
        return [None if isinstance(o, Failure) else o for o in self.client.complete(requests)]

    def release(self) -> None:
        """Close the client's connections and loop thread (the model runs on the server); ``generate`` reopens."""
        self.client.close()
