"""`run` through an OpenAI-compatible API judge and generator, against a real server on 127.0.0.1."""

import hashlib

import pytest

from promedical.bench.results import read_results, read_samples
from promedical.bench.runner import RunConfig, run
from tests.openai_server import OpenAIServer, Policy

FAULTS = {"http_500": 0.1, "http_429": 0.1, "truncated": 0.1, "not_json": 0.1, "no_choices": 0.05}


def _run(tmp_path, name, **overrides):
    return run(RunConfig(model="openai:judge-model", output_dir=tmp_path / name, limit=3, progress=False,
                         **overrides))


def test_faulty_server_gives_the_same_metrics_as_a_clean_one(tmp_path, monkeypatch):
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        clean = _run(tmp_path, "clean")
    with OpenAIServer(Policy(faults=FAULTS, fault_attempts=1)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        faulty = _run(tmp_path, "faulty")
        injected = sum(len(f) for f in server.faulted().values())
    assert injected > 10
    judge = faulty.results.tracks["judge"]
    assert judge.counts["unknown"] == 0
    assert judge.metrics == clean.results.tracks["judge"].metrics
    assert faulty.results.model.kind == "api"


@pytest.mark.slow
def test_failures_are_unknown_never_not_met_and_are_retried_on_rerun(tmp_path, monkeypatch):
    broken = {"now": True}

    def every_attempt(key: str, attempt: int) -> str | None:  # while broken, ~30% of requests fail for good
        return "http_500" if broken["now"] and int(hashlib.sha256(key.encode()).hexdigest(), 16) % 10 < 3 else None

    with OpenAIServer(Policy(faults=every_attempt)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        outcome = run(RunConfig(model="openai:judge-model", output_dir=tmp_path / "out", limit=2, progress=False))
        judge = outcome.results.tracks["judge"]
        samples = read_samples(outcome.run_dir)
        unknown = [s for s in samples if s.decision == "unknown"]
        assert unknown and judge.counts["unknown"] == len(unknown)
        assert all(s.correct is None and "error" in s.raw for s in unknown)
        assert judge.metrics["overall_accuracy"].n == len(samples) - len(unknown)
        broken["now"] = False  # the server recovers: a re-run asks again for exactly the unknown ones
        rerun = run(RunConfig(model="openai:judge-model", output_dir=tmp_path / "out", limit=2, progress=False))
    assert rerun.results.tracks["judge"].counts["unknown"] == 0
    assert rerun.model_calls == len(unknown)


def test_policy_track_with_api_generator_and_api_judge(tmp_path, monkeypatch):
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        outcome = run(RunConfig(model="openai:policy-model", track="policy", judge="openai:judge-model",
                                output_dir=tmp_path / "out", limit=3, progress=False))
    results = read_results(outcome.run_dir)
    policy = results.tracks["policy"]
    assert policy.counts["generation_failures"] == 0 and policy.counts["answers_excluded"] == 0
    answers = [s.answer for s in read_samples(outcome.run_dir)]
    assert all(a.startswith("reply to: ") for a in answers)
    assert policy.metrics["overall"].n == 3 and policy.judge.kind == "api"


@pytest.mark.slow
@pytest.mark.parametrize("track", ["judge", "policy"])
def test_unreachable_api_is_one_line_exit_1_and_writes_nothing(cli, tmp_path, monkeypatch, track):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    output = tmp_path / "out"
    args = ["run", "--model", "openai:m", "--output-dir", str(output), "--limit", "2", "--track", track]
    if track == "policy":
        args += ["--judge", "openai:m"]
    result = cli(*args)
    assert result.code == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: cannot reach OPENAI_BASE_URL=http://127.0.0.1:9/v1: connection refused"], result.stderr
    assert not output.exists()


def test_a_changed_system_prompt_is_a_cache_miss_and_a_new_template_hash(tmp_path, monkeypatch):
    """Every string that reaches the API judge is in its template hash, and so in every cache key."""
    import promedical.bench.models.api as api

    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        first = run(RunConfig(model="openai:judge-model", output_dir=tmp_path / "out", limit=1, progress=False))
        again = run(RunConfig(model="openai:judge-model", output_dir=tmp_path / "out", limit=1, progress=False))
        monkeypatch.setattr(api, "POINTWISE_SYSTEM", api.POINTWISE_SYSTEM + " Be strict.")
        edited = run(RunConfig(model="openai:judge-model", output_dir=tmp_path / "out", limit=1, progress=False))
        systems = {r.body["messages"][0]["content"] for r in server.records}
    assert first.model_calls > 0 and again.model_calls == 0
    assert edited.model_calls == first.model_calls  # the judge's hash changed: every verdict is asked again
    assert edited.results.template_hash != first.results.template_hash == again.results.template_hash
    assert edited.results.tracks["judge"].template_hash == edited.results.template_hash
    assert api.POINTWISE_SYSTEM in systems
