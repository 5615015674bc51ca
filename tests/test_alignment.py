"""Alignment: recipes, criterion-level pair building, threshold calibration, and the reproduction pipeline."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from promedical.alignment.config import GRPORecipe, load_recipe, recipe_path, resolve_data
from promedical.alignment.rm import (
    calibrate_threshold,
    calibrate_thresholds,
    constant_verdicts,
    criterion_contrast_pairs,
    criterion_pairs,
    load_base_model,
    optimizer,
    safety_counterfactual_pairs,
    separating_threshold,
    split_items,
)
from promedical.bench.datasets import BenchDataError, load_bench
from promedical.bench.prompts import TEMPLATE_HASH
from tests.conftest import DATA

SHIPPED = ["demo-rm", "smoke-rm", "smoke-sft", "smoke-grpo", "smoke-grpo-rm", "qwen3-8b-rm", "qwen3-8b-grpo"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_recipe_loads_and_builds_its_trainer_config(name):
    recipe = load_recipe(name)
    config = recipe.trl_config(check_only=True)  # a GPU recipe is checked on CPU with bf16 switched off
    assert config.seed == recipe.seed and config.report_to in ("none", ["none"], [])
    if isinstance(recipe, GRPORecipe):
        assert config.num_generations == recipe.num_generations and config.beta == recipe.kl_coefficient
        assert config.scale_rewards == recipe.scale_rewards


def test_paper_scale_recipes_carry_the_papers_settings():
    rm, grpo = load_recipe("qwen3-8b-rm"), load_recipe("qwen3-8b-grpo")
    assert (rm.epochs, rm.learning_rate, rm.max_length, rm.bf16) == (2, 5e-6, 8192, True)
    processes = yaml.safe_load(recipe_path("accelerate-zero3").read_text())["num_processes"]
    assert rm.batch_size * rm.gradient_accumulation_steps * processes == 64  # the paper's global batch
    assert (grpo.num_generations, grpo.learning_rate, grpo.kl_coefficient, grpo.use_vllm) == (8, 1e-6, 0.04, True)


@pytest.mark.parametrize("override, field", [({"learning_rat": 1e-5}, "learning_rat"), ({"lam": 1.0}, "lam"),
                                             ({"scenario_weights": {"emergency": 3.0}}, "scenario_weights"),
                                             ({"scale_rewards": "item"}, "scale_rewards")])
def test_bad_recipes_are_refused_with_the_field(override, field):
    with pytest.raises(BenchDataError) as error:
        load_recipe("smoke-grpo", **override)
    assert error.value.field == field


def test_unknown_recipe_names_the_shipped_ones():
    with pytest.raises(BenchDataError, match="shipped: .*smoke-rm"):
        load_recipe("no-such-recipe")


def test_pairs_from_pairwise_and_pointwise_labels():
    item = load_bench(DATA / "good" / "valid.jsonl")[0]  # r1 meets every criterion, r2 none; 4 pairwise labels
    pairs = criterion_pairs([item])
    assert len(pairs) == 4, "pointwise pairs that repeat a pairwise label are not added twice"
    assert {p.source for p in pairs} == {"pairwise"}
    texts = {r.id: r.text for r in item.responses}
    assert all(p.chosen == texts["r1"] and p.rejected == texts["r2"] for p in pairs)
    safety = [p for p in pairs if p.criterion.type == "safety"]
    assert safety and safety[0].chosen == texts["r1"], "the safe response is preferred on a safety criterion"


def test_pairs_from_pointwise_labels_alone_and_ties_skipped():
    item = load_bench(DATA / "good" / "valid.jsonl")[0]
    pointwise_only = item.model_copy(update={"labels": item.labels.model_copy(update={"pairwise": []})})
    assert len(criterion_pairs([pointwise_only])) == 4
    ties = item.labels.model_copy(update={"pointwise": [], "pairwise": [
        p.model_copy(update={"preferred": "tie"}) for p in item.labels.pairwise]})
    assert criterion_pairs([item.model_copy(update={"labels": ties})]) == []


def test_one_pair_per_criterion_for_the_sample_bench():
    items = load_bench("sample")
    pairs = criterion_pairs(items)
    keys = {(p.item.id, p.criterion.id, p.chosen, p.rejected) for p in pairs}
    assert len(keys) == len(pairs) > 700


def test_criterion_contrast_pairs_keep_the_response_and_prefer_the_met_criterion():
    item = next(i for i in resolve_data("synthetic:train:5:0"))
    pairs = criterion_contrast_pairs([item])
    met = {(label.criterion, label.response): label.met for label in item.labels.pointwise}
    by_text = {r.text: r.id for r in item.responses}
    expected = sum(sum(met[c.id, r.id] for c in item.rubric) * sum(not met[c.id, r.id] for c in item.rubric)
                   for r in item.responses)
    assert len(pairs) == expected > 0
    for pair in pairs:
        response = by_text[pair.chosen]
        assert pair.rejected == pair.chosen and pair.source == "criterion_contrast"
        assert met[pair.criterion.id, response] and not met[pair.rejected_criterion.id, response]
        chosen, rejected = pair.rendered()
        assert pair.criterion.text in chosen and pair.rejected_criterion.text in rejected


def test_safety_counterfactual_pairs_prefer_the_swapped_response_and_skip_other_items():
    items = resolve_data("synthetic:train:20:0")
    pairs = safety_counterfactual_pairs(items + load_bench("sample"), random.Random(0))
    assert pairs and all(p.item.source.startswith("synthetic:") for p in pairs), "hand-written items are skipped"
    for pair in pairs:
        assert pair.source == "safety_counterfactual" and pair.criterion.type == "safety"
        assert pair.rejected in {r.text for r in pair.item.responses} and pair.chosen != pair.rejected
        met = {(label.response, label.criterion): label.met for label in pair.item.labels.pointwise}
        rejected_id = next(r.id for r in pair.item.responses if r.text == pair.rejected)
        assert not met[rejected_id, pair.criterion.id], "the rejected response violates the criterion"


def test_only_the_fresh_head_learns_at_the_head_learning_rate(tiny_models):
    model, _, fresh = load_base_model(str(tiny_models["causal"]), seed=0)  # a causal LM has no scalar head
    assert fresh == {"score.weight"}
    recipe = load_recipe("smoke-rm", output_dir="unused", learning_rate=1e-5, head_learning_rate=1e-3)
    body, head = optimizer(model, fresh, recipe).param_groups
    assert head["lr"] == 1e-3 and head["params"] == [model.score.weight]
    assert body["lr"] == 1e-5 and len(body["params"]) == sum(1 for _ in model.parameters()) - 1


def test_base_layers_keep_the_first_layers_of_the_base(tiny_models):
    import torch

    full, _, _ = load_base_model(str(tiny_models["causal"]), seed=0)
    cut, _, fresh = load_base_model(str(tiny_models["causal"]), seed=0, layers=1)
    assert full.config.num_hidden_layers == 2 and len(cut.model.layers) == cut.config.num_hidden_layers == 1
    assert fresh == {"score.weight"}, "the kept layers come from the checkpoint"
    weights = full.state_dict()
    assert all(torch.equal(value, weights[name]) for name, value in cut.state_dict().items())
    with pytest.raises(ValueError, match="has 2 layers, not 3"):
        load_base_model(str(tiny_models["causal"]), seed=0, layers=3)


def test_threshold_calibration():
    threshold, accuracy = calibrate_threshold([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [False, False, False, True, True, True])
    assert 0.3 < threshold < 0.7 and accuracy == 1.0
    threshold, accuracy = calibrate_threshold([0.6, 0.7], [True, True])
    assert threshold <= 0.6 and accuracy == 1.0
    # Platt scaling: labels drawn with P(met | r) = σ(2 (r − 1)) put the crossing at r = 1, i.e. σ(1) ≈ 0.731
    rng = np.random.default_rng(0)
    rewards = rng.uniform(-4, 4, 20_000)
    met = rng.random(rewards.size) < 1 / (1 + np.exp(-2 * (rewards - 1)))
    threshold, _ = calibrate_threshold(list(1 / (1 + np.exp(-rewards))), list(met))
    assert abs(threshold - 1 / (1 + np.exp(-1))) < 0.01
    # scores that rank "not met" higher: no cut helps, the majority label everywhere
    threshold, accuracy = calibrate_threshold([0.1, 0.2, 0.8, 0.9, 0.95], [True, True, True, False, False])
    assert threshold == 0.0 and accuracy == 0.6


def test_separating_threshold_maximises_tpr_minus_fpr():
    # met: 0.3, 0.4, 0.6, 0.7, 0.8; not met: 0.1, 0.2, 0.35. Cut ≥ 0.4: TPR 4/5, FPR 0 → J = 0.8, the best
    # (≥ 0.3: 1 − 1/3; ≥ 0.6: 3/5); accuracy there 7/8
    scores, met = [0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8], [False, False, True, False, True, True, True, True]
    assert separating_threshold(scores, met) == (0.4, 7 / 8)
    # 10% violations ("not met") whose rewards sit one standard deviation below the rest: Platt's cut
    # flags almost nothing (0.4% of instances), the separating cut flags the lowest scores, where the
    # violations concentrate (half of the violations, 15% of the rest)
    rng = np.random.default_rng(1)
    met = rng.random(2000) > 0.1
    rewards = rng.normal(np.where(met, 0.5, -0.5), 1.0)
    scores = list(1 / (1 + np.exp(-rewards)))
    platt, _ = calibrate_threshold(scores, list(met))
    assert (np.asarray(scores) < platt).mean() < 0.01
    cut, _ = separating_threshold(scores, list(met))
    flagged = np.asarray(scores) < cut
    assert 0.1 < flagged.mean() < 0.5 and flagged[~met].mean() > flagged[met].mean() + 0.25
    # scores that rank "not met" higher: no cut helps, the majority label everywhere
    assert separating_threshold([0.1, 0.2, 0.8, 0.9, 0.95], [True, True, True, False, False]) == (0.0, 0.6)
    thresholds, _ = calibrate_thresholds([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8],
                                         [False, False, True, False, True, True, True, True], ["safety"] * 8,
                                         rule="separating")
    assert thresholds["safety"] == 0.4


def test_thresholds_are_calibrated_per_criterion_type():
    # safety criteria: met above 0.8; proficiency: met above 0.3; no excellence items → the pooled fit
    scores = [0.7, 0.75, 0.85, 0.9, 0.1, 0.2, 0.4, 0.5]
    met = [False, False, True, True, False, False, True, True]
    types = ["safety"] * 4 + ["proficiency"] * 4
    thresholds, accuracy = calibrate_thresholds(scores, met, types)
    assert 0.75 < thresholds["safety"] < 0.85 and 0.2 < thresholds["proficiency"] < 0.4 and accuracy == 1.0
    assert thresholds["excellence"] == calibrate_threshold(scores, met)[0]


def test_constant_verdicts_name_the_types_whose_threshold_separates_nothing():
    scores = [0.2, 0.9, 0.6, 0.7, 0.1, 0.3]
    types = ["proficiency", "proficiency", "safety", "safety", "excellence", "excellence"]
    thresholds = {"proficiency": 0.5, "safety": 0.0, "excellence": 0.95}
    assert constant_verdicts(scores, types, thresholds) == {"safety": "met", "excellence": "not_met"}


def test_data_specs_joined_by_plus_concatenate_their_items():
    joined = resolve_data("synthetic:train:3:1 + synthetic:heldout_prompts:2:1")
    parts = resolve_data("synthetic:train:3:1") + resolve_data("synthetic:heldout_prompts:2:1")
    assert [i.id for i in joined] == [i.id for i in parts] and len({i.id for i in joined}) == 5


def test_data_spec_sets_the_violation_rate():
    violating = resolve_data("synthetic:train:6:1:violation=1")
    default = resolve_data("synthetic:train:6:1")
    assert [i.rubric for i in violating] == [i.rubric for i in default]
    assert all(not label.met for item in violating for label in item.labels.pointwise
               if next(c for c in item.rubric if c.id == label.criterion).type == "safety")
    assert resolve_data("synthetic:train:6:1:violation=0.25") == default  # the generator's default
    for bad in ("synthetic:train:6:1:violation=1.5", "synthetic:train:6:1:violation=x", "synthetic:train:6:x"):
        with pytest.raises(BenchDataError, match="violation=P"):
            resolve_data(bad)


def test_dev_split_is_by_item_and_seeded():
    items = resolve_data("synthetic:train:50:3")
    train, dev = split_items(items, 0.2, seed=1)
    assert len(dev) == 10 and not {i.id for i in train} & {i.id for i in dev}
    assert split_items(items, 0.2, seed=1) == (train, dev)


@pytest.mark.slow
def test_quick_reproduction_end_to_end(tmp_path):
    """The whole smoke pipeline at toy size: every stage runs and writes what the report promises."""
    from promedical.alignment.reproduce import QUICK, reproduce_smoke
    from promedical.bench.results import read_results

    summary = reproduce_smoke(tmp_path, QUICK, log=lambda message: None)
    calibration = json.loads((tmp_path / "models" / "smoke-rm" / "promedical_rm.json").read_text())
    assert calibration["template_hash"] == TEMPLATE_HASH and calibration["calibration_data"] == "calibration"
    assert set(calibration["thresholds"]) == {"proficiency", "excellence", "safety"}
    assert set(calibration["constant_verdicts"]) <= set(calibration["thresholds"])
    assert summary["reward_model"]["pairs_by_source"]["safety_counterfactual"] > 0, "the recipe's safety pairs"
    assert summary["policy_judge_constant_verdicts"] == json.loads(
        (tmp_path / "models" / "smoke-rm-policy" / "promedical_rm.json").read_text())["constant_verdicts"]
    view = tmp_path / "models" / "smoke-rm-synthetic"  # same weights, threshold for synthetic-world text
    assert (view / "model.safetensors").is_symlink() and (view / "model.safetensors").exists()
    assert json.loads((view / "promedical_rm.json").read_text())["calibration_data"].startswith("synthetic:train:")
    policy_view = json.loads((tmp_path / "models" / "smoke-rm-policy" / "promedical_rm.json").read_text())
    assert "warm-up policy's answers" in policy_view["calibration_data"], "GRPO's thresholds fit the policy's text"
    assert (tmp_path / "models" / "smoke-rm" / "README.md").exists()
    report = (tmp_path / "reproduce_report.md").read_text()
    assert "+22.3" in report and "different scale" in report
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    assert len(runs) == 2 * 2 + 1 + 3 * 2 and all(read_results(r) for r in runs), \
        "2 judges × 2 benches, the reward's reading of sampled answers, 3 policies × 2"
    assert summary["reward_model"]["pairs_by_source"]["on_policy"] > 0, "the warm-up policy's own answers"
    on_policy = load_bench(str(tmp_path / "data" / "on_policy.jsonl"))
    assert on_policy and all(item.id.endswith("-on-policy") for item in on_policy)
    grpo = summary["grpo"]
    assert grpo["grpo_rm"]["judge"] == f"rm:{tmp_path / 'models' / 'smoke-rm-policy'}"
    assert grpo["grpo_world"]["judge"] == "world"
    assert all(g["steps"] == QUICK.grpo_steps and g["violation_rate_last"] is not None for g in grpo.values())
    assert (tmp_path / "models" / "sft" / "base" / "config.json").exists(), "the fresh tiny policy is kept"
    assert summary["sft"]["final_loss"] is not None
    assert set(summary["policy"]) == {"heldout_prompts", "heldout_scenarios"}
    for data in summary["policy"].values():
        assert set(data["metrics"]) == set(data["answers"]) == {"sft", "grpo_rm", "grpo_world"}
        assert all(0 <= a["repeated_sentences"] <= 1 and a["answers"] == QUICK.policy_eval_items
                   for a in data["answers"].values())
        assert all(read_results(Path(r)).config["judge"] == "world" for r in data["runs"])
    assert "oracle-reward control" in report and "heldout_scenarios" in report
    assert set(summary["judge"]) == {"test", "synthetic_heldout"}
    assert (tmp_path / "models" / "zero-shot" / "promedical_embedding.json").exists()
    assert set(summary["judge"]["test"]["met_share"]) == {"zero_shot", "trained"}
    reading = summary["policy_reward_reading"]
    assert read_results(Path(reading["run"])).config["model"].endswith("smoke-rm-policy")
    assert 0 < reading["floor"]["overall_accuracy"] < 1 and "reading the policy's own text" in report
    assert reading["ordering"]["answers"] == QUICK.policy_calibration_prompts * QUICK.on_policy_samples
    assert 0 < summary["judge"]["test"]["floor"]["overall_accuracy"] < 1 and "constant floor" in report
    assert "zero-shot" in report and "locked hand-written test set" in report


@pytest.mark.slow
def test_the_demo_judge_beats_the_constant_floor_on_the_sample(tmp_path):
    """The README's demo (scripts/demo.sh), as shipped: the demo reward model's pointwise decisions on the sample,
    all together, beat the constant judge's, and its overall accuracy beats the floor with its whole CI
    (measured: 69.3% vs 56.9% pointwise, 73.2% [70.8, 75.5] vs 60.5% overall)."""
    from promedical.alignment.rm import train_reward_model
    from promedical.bench.metrics import constant_floor
    from promedical.bench.results import read_samples
    from promedical.bench.runner import RunConfig, run

    model = tmp_path / "demo-rm"
    train_reward_model(load_recipe("demo-rm", output_dir=str(model)))
    outcome = run(RunConfig(model=str(model), bench="sample", output_dir=tmp_path / "runs", progress=False))
    pointwise = [s for s in read_samples(outcome.run_dir) if s.track == "judge" and s.mode == "pointwise"]
    accuracy = sum(s.correct for s in pointwise) / len(pointwise)
    assert accuracy > constant_floor(pointwise)["overall_accuracy"] + 0.05
    overall = outcome.results.tracks["judge"].metrics["overall_accuracy"]
    assert overall.ci_low > constant_floor(read_samples(outcome.run_dir))["overall_accuracy"]


def test_sentence_tokens_keep_the_form_each_sentence_occurs_in():
    from promedical.bench.tiny import sentence_tokens

    texts = ["Hello there. Take care.", "Take care. Is it bad? Take care!", "Hello there. Take care."]
    assert sentence_tokens(texts) == [" Is it bad?", " Take care!", " Take care.", "Hello there.", "Take care."]
    assert sentence_tokens(texts, min_count=2) == [" Take care.", "Hello there."]


def test_tiny_model_options_build_a_sentence_level_policy(tmp_path):
    """The additive options of build_tiny_model: extra corpus, whole-sentence tokens, size and init; the
    defaults still build the 64-wide demo model."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from promedical.bench.tiny import build_tiny_model, sentence_tokens

    responses = [r.text for item in resolve_data("synthetic:train:4:1") for r in item.responses]
    path = build_tiny_model(tmp_path / "policy", extra_texts=responses, extra_tokens=sentence_tokens(responses),
                            vocab_size=400, hidden_size=96, num_layers=1, init_std=0.1)
    config = AutoConfig.from_pretrained(path)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.initializer_range) == \
        (96, 1, 6, 0.1)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer(responses[0], add_special_tokens=False)["input_ids"]
    assert len(ids) == len(sentence_tokens([responses[0]])) and tokenizer.decode(ids) == responses[0]
    unseen = "An unseen question: does 10,000 IU of vitamin D a day hurt?"
    assert tokenizer.decode(tokenizer(unseen, add_special_tokens=False)["input_ids"]) == unseen  # BPE fallback
    assert AutoModelForCausalLM.from_pretrained(path).config.vocab_size == len(tokenizer)
    default = AutoConfig.from_pretrained(build_tiny_model(tmp_path / "default"))
    assert (default.hidden_size, default.num_hidden_layers, default.intermediate_size, default.num_attention_heads,
            default.num_key_value_heads, default.initializer_range) == (64, 2, 128, 4, 2, 0.02)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_tiny_model(tmp_path / "bad", hidden_size=100)


def test_sft_examples_are_prompt_completion_and_only_the_response_is_trained(tmp_path):
    from trl import SFTTrainer

    from promedical.alignment.grpo import build_tiny_policy, response_dataset
    from promedical.bench.models.loading import load_tokenizer

    recipe = load_recipe("smoke-sft", output_dir=str(tmp_path / "sft"), train_data="synthetic:train:3:1",
                         tiny_hidden_size=32, tiny_vocab_size=300)
    assert recipe.base_model == "tiny" and recipe.trl_config().completion_only_loss is True
    items = resolve_data(recipe.train_data)
    dataset = response_dataset(items, recipe.chat_template_kwargs())
    assert set(dataset.column_names) == {"prompt", "completion", "chat_template_kwargs"}
    assert len(dataset) == sum(len(item.responses) for item in items)
    assert dataset[0]["completion"] == [{"role": "assistant", "content": items[0].responses[0].text}]
    base = build_tiny_policy(recipe, items)
    assert base == tmp_path / "sft" / "base"
    tokenizer = load_tokenizer(str(base))
    trainer = SFTTrainer(model=str(base), args=recipe.trl_config(), train_dataset=dataset, processing_class=tokenizer)
    example = trainer.train_dataset[0]
    trained = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100]
    assert tokenizer.decode(trained).startswith(items[0].responses[0].text + "<|im_end|>")
    prompt = example["input_ids"][:len(example["input_ids"]) - len(trained)]
    assert items[0].messages[0].content in tokenizer.decode(prompt), "the prompt is context, not a target"


def test_bad_sft_recipe_settings_are_refused():
    with pytest.raises(BenchDataError) as error:
        load_recipe("smoke-sft", tiny_hidden_size=100)
    assert error.value.field == "tiny_hidden_size"


def test_tiny_policy_sft_then_grpo_report_their_progress(tmp_path, tiny_models):
    """A real (toy-sized) SFT of a fresh tiny policy, then two GRPO steps graded by a real reward model."""
    from promedical.alignment.grpo import train_grpo, train_sft

    sft = train_sft(load_recipe("smoke-sft", output_dir=str(tmp_path / "sft"), train_data="synthetic:train:4:1",
                                tiny_hidden_size=32, tiny_vocab_size=300, epochs=1, batch_size=4, logging_steps=1))
    assert sft["steps"] > 0 and sft["final_loss"] > 0 and sft["vocab_size"] > 300
    assert (tmp_path / "sft" / "base" / "config.json").exists() and (tmp_path / "sft" / "config.json").exists()
    grpo = train_grpo(load_recipe("smoke-grpo", policy_model=str(tmp_path / "sft"), judge=f"rm:{tiny_models['reward']}",
                                  prompts="synthetic:train:2:2", max_steps=2, num_generations=2, batch_size=2,
                                  max_completion_length=8, logging_steps=1, output_dir=str(tmp_path / "grpo")))
    assert grpo["steps"] == 2
    for key in ("reward", "violation_rate", "completion_length"):
        assert grpo[f"{key}_first"] is not None and grpo[f"{key}_last"] is not None
    assert 0.0 <= grpo["groups_without_reward_variance"] <= 1.0


def test_answer_statistics_count_words_distinct_and_repeated_sentences():
    from promedical.alignment.reproduce import answer_statistics

    # answer 1: 3 sentences, "Rest." twice → 2 distinct, 1 repeat; answer 2: 2 distinct sentences, no repeat
    stats = answer_statistics(["Rest. Drink water. Rest.", "See a GP today! Is it worse?"])
    assert stats == {"answers": 2, "words": (4 + 7) / 2, "distinct_sentences": (2 + 2) / 2,
                     "repeated_sentences": 1 / 5, "answers_with_a_repeat": 1 / 2}
