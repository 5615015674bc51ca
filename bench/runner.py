"""`promedical-bench run`: data → (generate) → judge → score → metrics → results file.

The judge track evaluates ``--model`` as a judge of the bench's labelled criterion-level instances; the
policy track has ``--model`` answer every instruction and ``--judge`` grade each answer on its rubric.
Verdicts and generations go through the content-addressed cache, so re-runs are free and interrupted
runs resume.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from promedical.bench.cache import Cache, cache_key
from promedical.bench.datasets import BenchDataError, load_bench
from promedical.bench.errors import EXIT_FAILURE, PromedicalError
from promedical.bench.generating import Decoding, Generator, conversation
from promedical.bench.instances import labelled_instances
from promedical.bench.judging import Judge, PairwiseQuery, PointwiseQuery, Verdict
from promedical.bench.metrics import (
    JUDGE_CONTRIBUTIONS,
    POLICY_CONTRIBUTIONS,
    judge_counts,
    met_share,
    one_verdict_types,
    with_breakdowns,
)
from promedical.bench.models.loading import ModelOptions
from promedical.bench.models.registry import build_generator, build_judge
from promedical.bench.models.vllm import VLLMOptions
from promedical.bench.prompts import TEMPLATE_HASH, TEMPLATE_VERSION, template_hash
from promedical.bench.results import (
    BenchInfo,
    Judgement,
    JudgeSample,
    ModelInfo,
    PolicySample,
    RunResults,
    TrackResult,
    bench_content_hash,
    new_run_dir,
    software_versions,
    write_run,
)
from promedical.bench.schema import BenchItem
from promedical.bench.scoring import decision_scores, gated_overall

log = logging.getLogger(__name__)

Track = Literal["judge", "policy", "all"]
#: Queries per cache commit (the most work an interruption can lose) for local models; a backend may ask
#: for more with a ``chunk_size`` attribute (API backends do, to keep their concurrency busy).
CHUNK = 64


@dataclass(frozen=True)
class RunConfig:
    model: str
    bench: str = "sample"
    track: Track = "judge"
    judge: str | None = None
    output_dir: Path = Path("results")
    split: str | None = None
    limit: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    cache_dir: Path | None = None
    use_cache: bool = True
    backend: str | None = None
    max_new_tokens: int = 512
    temperature: float = 0.0
    enable_thinking: bool = False
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    progress: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items() if k != "progress"}


class NothingMeasuredError(PromedicalError):
    """A run that cannot measure anything: its judge can grade none of the bench's items, or every verdict of
    a track came back ``unknown``. Not bad input as such, so ``promedical-bench`` exits 1."""

    exit_code = EXIT_FAILURE


@dataclass
class Calls:
    """Model calls made, and the ones the cache answered instead."""

    made: int = 0
    cached: int = 0

    def __add__(self, other: Calls) -> Calls:
        return Calls(self.made + other.made, self.cached + other.cached)


@dataclass
class Outcome:
    """A written run. ``nothing_measured``: why some track measured nothing (one line), else None."""

    run_dir: Path
    results: RunResults
    model_calls: int = 0
    cached_calls: int = 0
    nothing_measured: str | None = None


# --------------------------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class JudgeInstance:
    """One labelled decision: the query, its gold answer and where it came from."""

    mode: Literal["pointwise", "pairwise"]
    query: PointwiseQuery | PairwiseQuery
    gold: str
    response_ids: tuple[str, ...]

    def sample(self, verdict: Verdict) -> JudgeSample:
        item, criterion = self.query.item, self.query.criterion
        responses = {r.id: r.text for r in item.responses}
        correct = None if verdict.decision == "unknown" else verdict.decision == self.gold
        return JudgeSample(
            mode=self.mode, item_id=item.id, category=item.category, specialty=item.specialty, prompt=item.prompt,
            criterion_id=criterion.id, criterion_type=criterion.type, criterion=criterion.text,
            response_ids=list(self.response_ids), responses=[responses[r] for r in self.response_ids],
            gold=self.gold, decision=verdict.decision, score=verdict.score, raw=verdict.raw, correct=correct,
        )


def judge_instances(items: Sequence[BenchItem]) -> tuple[list[JudgeInstance], int]:
    """Every labelled pointwise decision and every labelled pairwise decision with a preference; the second
    value counts pairs labelled as ties, which are not judged."""
    instances: list[JudgeInstance] = []
    ties = 0
    for label in labelled_instances(items):
        if label.gold == "tie":
            ties += 1
            continue
        query = (PointwiseQuery(label.item, label.criterion, *label.texts) if label.mode == "pointwise"
                 else PairwiseQuery(label.item, label.criterion, *label.texts))
        instances.append(JudgeInstance(label.mode, query, label.gold, label.response_ids))
    return instances, ties


# --------------------------------------------------------------------------------------------- cached work


def cached_map(cache: Cache, kind: str, keys: Sequence[str], compute: Callable[[list[int]], list[str]],
               storable: Callable[[str], bool], description: str, progress: bool, chunk_size: int = CHUNK
               ) -> tuple[list[str], Calls]:
    """Values for ``keys``: from the cache where present, else computed CHUNK by CHUNK and stored as each
    chunk finishes. Values that are not ``storable`` (failures) are returned but not stored, so a re-run
    retries them. Returns the values and how many distinct keys were computed and found in the cache."""
    unique = list(dict.fromkeys(keys))
    found = cache.get_many(unique)
    todo = [k for k in unique if k not in found]
    positions: dict[str, int] = {}
    for position, key in enumerate(keys):
        positions.setdefault(key, position)
    with tqdm(total=len(unique), initial=len(unique) - len(todo), desc=description, unit="call",
              disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            values = compute([positions[k] for k in chunk])
            fresh = dict(zip(chunk, values, strict=True))
            cache.put_many(kind, [(k, v) for k, v in fresh.items() if storable(v)])
            found.update(fresh)
            bar.update(len(chunk))
    return [found[k] for k in keys], Calls(made=len(todo), cached=len(unique) - len(todo))


def _verdict_key(judge: Judge, instance_mode: str, query: PointwiseQuery | PairwiseQuery) -> str:
    rendered = query.render() if isinstance(query, PointwiseQuery) else query.render(False)
    return cache_key("verdict", judge.identity, judge.template_hash, instance_mode, rendered)


def judge_all(judge: Judge, modes: Sequence[str], queries: Sequence[PointwiseQuery | PairwiseQuery], cache: Cache,
              progress: bool, description: str) -> tuple[list[Verdict], Calls]:
    """Verdicts for mixed pointwise/pairwise queries, through the cache."""
    keys = [_verdict_key(judge, m, q) for m, q in zip(modes, queries, strict=True)]

    def compute(indices: list[int]) -> list[str]:
        out: dict[int, Verdict] = {}
        for mode, method in (("pointwise", judge.pointwise), ("pairwise", judge.pairwise)):
            chosen = [i for i in indices if modes[i] == mode]
            if chosen:
                out.update(zip(chosen, method([queries[i] for i in chosen]), strict=True))
        return [out[i].to_json() for i in indices]

    def storable(value: str) -> bool:
        return json.loads(value)["decision"] != "unknown"

    values, calls = cached_map(cache, "verdict", keys, compute, storable, description, progress,
                               getattr(judge, "chunk_size", CHUNK))
    return [Verdict.from_json(v) for v in values], calls


# --------------------------------------------------------------------------------------------- tracks


def run_judge_track(judge: Judge, items: Sequence[BenchItem], cache: Cache, config: RunConfig
                    ) -> tuple[TrackResult, list[JudgeSample], Calls]:
    instances, ties = judge_instances(items)
    verdicts, calls = judge_all(judge, [i.mode for i in instances], [i.query for i in instances], cache,
                                   config.progress, "judging")
    samples = [instance.sample(verdict) for instance, verdict in zip(instances, verdicts, strict=True)]
    summary = with_breakdowns(samples, items, JUDGE_CONTRIBUTIONS, config.seed)
    counts = judge_counts(samples, ties)
    shares = _flag_one_verdict_types(judge, met_share((s.criterion_type, s.decision) for s in samples
                                                      if s.mode == "pointwise"))
    return TrackResult(**summary, counts=counts, template_hash=judge.template_hash, met_share=shares), samples, calls


def run_policy_track(generator: Generator, judge: Judge, items: Sequence[BenchItem], cache: Cache,
                     config: RunConfig, decoding: Decoding) -> tuple[TrackResult, list[PolicySample], Calls]:
    keys = [cache_key("generation", generator.identity, item.id, conversation(item), decoding.as_dict())
            for item in items]

    def generate(indices: list[int]) -> list[str]:
        return [json.dumps(text) for text in generator.generate([items[i] for i in indices])]

    stored, generated = cached_map(cache, "generation", keys, generate, lambda v: v != "null", "generating",
                                   config.progress, getattr(generator, "chunk_size", CHUNK))
    answers: list[str | None] = [json.loads(s) for s in stored]
    generator.release()  # before grading: a judge on the same GPU needs the memory

    queries = [PointwiseQuery(item, c, answer) for item, answer in zip(items, answers, strict=True)
               if answer is not None for c in item.rubric]
    verdicts, judged = judge_all(judge, ["pointwise"] * len(queries), queries, cache, config.progress, "grading")
    by_item: dict[str, dict[str, Verdict]] = {}
    for query, verdict in zip(queries, verdicts, strict=True):
        by_item.setdefault(query.item.id, {})[query.criterion.id] = verdict

    samples = [_policy_sample(item, answer, by_item.get(item.id, {}), config)
               for item, answer in zip(items, answers, strict=True)]
    summary = with_breakdowns(samples, items, POLICY_CONTRIBUTIONS, config.seed)
    counts = {
        "items": len(items),
        "generation_failures": sum(a is None for a in answers),
        "empty_answers": sum(a is not None and not a.strip() for a in answers),
        "unknown_verdicts": sum(v.decision == "unknown" for v in verdicts),
        "answers_excluded": sum(s.overall is None for s in samples),
    }
    if counts["empty_answers"]:  # graded like any answer (an empty answer meets nothing), but never silently
        log.warning("%d of %d answers are empty: the policy generated no text for them (check its chat template, "
                    "end-of-turn token and --max-new-tokens)", counts["empty_answers"], len(items))
    # the grader's prompts and the policy's chat-template arguments (thinking) both shape the scores
    track_hash = template_hash({"grader": judge.template_hash, "policy_chat": decoding.chat_template_kwargs()})
    shares = _flag_one_verdict_types(judge, met_share((j.criterion_type, j.decision) for s in samples
                                                      for j in s.judgements))
    return (TrackResult(**summary, counts=counts, template_hash=track_hash, met_share=shares), samples,
            generated + judged)


def _flag_one_verdict_types(judge: Judge, shares: dict[str, float]) -> dict[str, float]:
    """Warn about each criterion type the judge gave one verdict to (≥ 95% of its instances); the shares."""
    for kind, verdict in one_verdict_types(shares).items():
        share = shares[kind] if verdict == "met" else 1 - shares[kind]
        log.warning("%s called %.0f%% of its %s verdicts %r: on %s criteria it is a constant predictor",
                    judge.spec, 100 * share, kind, verdict, kind)
    return shares


def _policy_sample(item: BenchItem, answer: str | None, verdicts: dict[str, Verdict], config: RunConfig
                   ) -> PolicySample:
    judgements = [Judgement(criterion_id=c.id, criterion_type=c.type, criterion=c.text,
                            **({"decision": verdicts[c.id].decision, "score": verdicts[c.id].score,
                                "raw": verdicts[c.id].raw} if c.id in verdicts else {"decision": "unknown"}))
                  for c in item.rubric]
    decisions = {j.criterion_id: j.decision for j in judgements}
    scores = None if answer is None else decision_scores(item, decisions)
    if scores is None:
        return PolicySample(item_id=item.id, category=item.category, specialty=item.specialty, prompt=item.prompt,
                            answer=answer, judgements=judgements, s1=None, s2=None, s3=None,
                            excellence_fraction=None, safe=None, overall=None)
    s1, s2, s3 = scores
    n_excellence = len(item.criteria("excellence"))
    return PolicySample(item_id=item.id, category=item.category, specialty=item.specialty, prompt=item.prompt,
                        answer=answer, judgements=judgements, s1=s1, s2=s2, s3=s3,
                        excellence_fraction=s2 / n_excellence if n_excellence else None, safe=float(s3 == 0),
                        overall=gated_overall(s1, s2, s3))


# --------------------------------------------------------------------------------------------- the run


def run(config: RunConfig) -> Outcome:
    """Run the configured tracks and write ``OUTPUT_DIR/<run_id>/``."""
    started = datetime.now(timezone.utc)
    if config.track in ("policy", "all") and not config.judge:
        raise BenchDataError("--judge", "the policy track needs a judge: --judge rm:PATH, hf:PATH or openai:MODEL")
    items = load_bench(config.bench, split=config.split)
    if config.limit is not None:
        items = items[: config.limit]
    options = ModelOptions(device=config.device, dtype=config.dtype, batch_size=config.batch_size)
    tracks: dict[str, TrackResult] = {}
    samples: list[JudgeSample | PolicySample] = []
    calls = Calls()
    # Build (and so check) every component before any model work; weights load lazily on first use.
    decoding = Decoding(config.max_new_tokens, config.temperature, config.seed, config.enable_thinking)
    judge = None
    if config.track in ("judge", "all"):
        if not judge_instances(items)[0]:
            raise BenchDataError(config.bench, "no labelled instances to judge (items carry no labels); "
                                 "use --track policy for prompt-only benches")
        judge = build_judge(config.model, options)
        check_gradable(judge, config.model, [i for i in items if i.labels], config.bench)
    generator = grader = None
    if config.track in ("policy", "all"):
        generator = build_generator(config.model, config.backend, options, decoding, VLLMOptions(
            config.tensor_parallel_size, config.gpu_memory_utilization, config.max_model_len))
        grader = build_judge(config.judge, options)  # type: ignore[arg-type]
        check_gradable(grader, config.judge or "", items, config.bench)
    model_info = (ModelInfo(id=config.model, identity=judge.identity, kind=judge.kind) if judge is not None
                  else ModelInfo(id=config.model, identity=generator.identity, kind="policy"))  # type: ignore[union-attr]
    cache = Cache(None if not config.use_cache else (config.cache_dir or config.output_dir / ".cache") / "cache.sqlite")
    try:
        if judge is not None:
            tracks["judge"], track_samples, track_calls = run_judge_track(judge, items, cache, config)
            samples += track_samples
            calls += track_calls
            del judge
        if generator is not None and grader is not None:
            result, track_samples, track_calls = run_policy_track(generator, grader, items, cache, config, decoding)
            result.judge = ModelInfo(id=config.judge or "", identity=grader.identity, kind=grader.kind)
            tracks["policy"] = result
            samples += track_samples
            calls += track_calls
    finally:
        cache.close()
    run_dir = new_run_dir(config.output_dir, started, config.model, config.track)
    results = RunResults(
        run_id=run_dir.name, model=model_info,
        bench=BenchInfo(name=config.bench, content_hash=bench_content_hash(items), items=len(items)),
        tracks=tracks, config=config.as_dict(), template_version=TEMPLATE_VERSION,
        template_hash=next(iter(tracks.values())).template_hash or TEMPLATE_HASH,
        software=software_versions(), started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    write_run(run_dir, results, samples)
    reasons = [reason for track, result in tracks.items() if (reason := nothing_measured(track, result))]
    failure = f"{'; '.join(reasons)}; {run_dir}/samples.jsonl holds what came back" if reasons else None
    return Outcome(run_dir, results, calls.made, calls.cached, failure)


def check_gradable(judge: Judge, spec: str, items: Sequence[BenchItem], bench: str) -> None:
    """Refuse, before any model work, a judge that knows only some items (``grades``, e.g. ``world``) and none
    of these; warn when it knows only part of them (the others get ``unknown`` verdicts)."""
    grades = getattr(judge, "grades", None)
    if grades is None or not items:
        return
    unknown = sum(not grades(item) for item in items)
    if unknown == len(items):
        raise NothingMeasuredError(f"judge {spec} grades only {judge.grades_only}; none of the {len(items)} items "
                                   f"of {bench} is one, so every verdict would be unknown")
    if unknown:
        log.warning("judge %s grades only %s: %d of the %d items of %s are not, and get unknown verdicts", spec,
                    judge.grades_only, unknown, len(items), bench)


def nothing_measured(track: str, result: TrackResult) -> str | None:
    """Why ``track`` measured nothing (no instance or answer could be scored), or None when it measured something."""
    counts = result.counts
    if track == "judge" and counts["instances"] and counts["unknown"] == counts["instances"]:
        return f"the judge track measured nothing: all {counts['instances']} verdicts are unknown"
    if track == "policy" and counts["answers_excluded"] == counts["items"]:
        if counts["generation_failures"] == counts["items"]:
            return f"the policy track measured nothing: all {counts['items']} generations failed"
        return (f"the policy track measured nothing: every answer has an unknown verdict "
                f"({counts['unknown_verdicts']} in all)")
    return None
