"""Policy training: supervised warm-up (TRL ``SFTTrainer``) and safety-veto GRPO (TRL ``GRPOTrainer``).

GRPO data are bench items (labels not needed): the conversation is the prompt, and each item's own rubric
rides along as a dataset column so that :class:`~promedical.alignment.reward.VetoReward` can grade every
completion on it. Scale-out (several GPUs, DeepSpeed ZeRO-3, vLLM generation) is configured by the recipe
and launched with ``accelerate launch``; see docs/alignment.md.

SFT examples are prompt-completion pairs trained on the completion only. ``base_model: tiny`` (the CPU smoke
recipe) first builds a fresh sentence-level tiny policy from the SFT data (:func:`build_tiny_policy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promedical.alignment.config import GRPORecipe, SFTRecipe, resolve_data, resolve_model_source
from promedical.alignment.extras import require_training_extras
from promedical.alignment.reward import VetoReward
from promedical.bench.models.loading import ModelOptions, load_tokenizer
from promedical.bench.models.registry import build_judge
from promedical.bench.schema import BenchItem


def prompt_dataset(items: list[BenchItem]):
    """GRPO prompts: conversational ``prompt`` plus the columns the veto reward reads."""
    from datasets import Dataset

    return Dataset.from_list([{
        "prompt": [m.model_dump() for m in item.messages],
        "rubric": [c.model_dump() for c in item.rubric],
        "scenario": item.scenario or "",
        "item_id": item.id,
        "category": item.category,
        "specialty": item.specialty,
        "source": item.source or "",
    } for item in items])


def response_dataset(items: list[BenchItem], template_kwargs: dict[str, Any]):
    """SFT examples in TRL's conversational prompt-completion form: each item's conversation (``prompt``)
    followed by each of its candidate responses (``completion``, one assistant turn), rendered with
    ``template_kwargs`` (e.g. ``enable_thinking``). With ``completion_only_loss`` (the SFT recipe's default)
    only the response and its end-of-turn token are trained, which needs no ``{% generation %}`` markers in
    the chat template."""
    from datasets import Dataset

    return Dataset.from_list([
        {"prompt": [m.model_dump() for m in item.messages], "completion": [{"role": "assistant", "content": r.text}],
         "chat_template_kwargs": dict(template_kwargs)}
        for item in items for r in item.responses
    ])


def build_tiny_policy(recipe: SFTRecipe, items: list[BenchItem]) -> Path:
    """The fresh tiny chat policy of ``base_model: tiny``, written to ``OUTPUT_DIR/base``: a Qwen3 with random
    weights whose tokenizer is trained on the SFT data (conversations and responses). With
    ``tiny_sentence_tokens`` every sentence of the training responses (in the form it occurs there) is also one
    token, so the policy writes a response as ~10 sentence choices — coherent text after a few hundred CPU
    steps, where a word-level tiny model would still produce gibberish. It can still spell anything else
    (held-out prompts, unseen sentences) with byte-level BPE."""
    from promedical.bench.tiny import build_tiny_model, sentence_tokens

    responses = [r.text for item in items for r in item.responses]
    texts = [m.content for item in items for m in item.messages] + responses
    return build_tiny_model(Path(recipe.output_dir) / "base", kind="causal", seed=recipe.seed, extra_texts=texts,
                            extra_tokens=sentence_tokens(responses) if recipe.tiny_sentence_tokens else None,
                            vocab_size=recipe.tiny_vocab_size, hidden_size=recipe.tiny_hidden_size,
                            num_layers=recipe.tiny_layers, init_std=recipe.tiny_init_std)


def train_sft(recipe: SFTRecipe) -> dict[str, Any]:
    """Supervised fine-tuning of a chat policy on bench responses (safe and unsafe alike)."""
    from trl import SFTTrainer

    require_training_extras()
    items = resolve_data(recipe.train_data)
    source = str(build_tiny_policy(recipe, items)) if recipe.base_model == "tiny" else \
        resolve_model_source(recipe.base_model)
    tokenizer = load_tokenizer(source)
    dataset = response_dataset(items, recipe.chat_template_kwargs())
    trainer = SFTTrainer(model=source, args=recipe.trl_config(), train_dataset=dataset,
                         processing_class=tokenizer)
    result = trainer.train()
    trainer.save_model(recipe.output_dir)  # with the tokenizer
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    return {"conversations": len(trainer.train_dataset), "base_model": source, "vocab_size": len(tokenizer),
            "steps": trainer.state.global_step, "train_loss": result.training_loss,
            "final_loss": history[-1]["loss"] if history else None,
            "final_token_accuracy": history[-1].get("mean_token_accuracy") if history else None,
            "output_dir": recipe.output_dir}


def train_grpo(recipe: GRPORecipe) -> dict[str, Any]:
    """Safety-veto GRPO of ``recipe.policy_model`` against ``recipe.judge``."""
    from trl import GRPOTrainer

    require_training_extras(use_vllm=recipe.use_vllm)
    items = resolve_data(recipe.prompts)
    source = resolve_model_source(recipe.policy_model)
    judge = build_judge(recipe.judge, ModelOptions(device="auto", dtype=recipe.judge_dtype,
                                                   batch_size=recipe.judge_batch_size))
    reward = VetoReward(judge, recipe.alpha, recipe.beta, recipe.lam, recipe.scenario_weights)
    trainer = GRPOTrainer(model=source, reward_funcs=[reward], args=recipe.trl_config(),
                          train_dataset=prompt_dataset(items), processing_class=load_tokenizer(source))
    result = trainer.train()
    trainer.save_model(recipe.output_dir)  # with the tokenizer
    history = [entry for entry in trainer.state.log_history if "reward" in entry]

    def logged(key: str, index: int) -> float | None:
        return history[index].get(key) if history else None

    return {"prompts": len(items), "steps": trainer.state.global_step, "train_loss": result.training_loss,
            "reward_first": logged("reward", 0), "reward_last": logged("reward", -1),
            "violation_rate_first": logged("veto/violation_rate", 0),
            "violation_rate_last": logged("veto/violation_rate", -1),
            "completion_length_first": logged("completions/mean_length", 0),
            "completion_length_last": logged("completions/mean_length", -1),
            "groups_without_reward_variance": (sum(e.get("frac_reward_zero_std", 0.0) for e in history) / len(history)
                                               if history else None),
            "output_dir": recipe.output_dir}
