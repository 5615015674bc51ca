"""Thinking mode (Qwen3's chat-template argument ``enable_thinking``) is one explicit setting: off unless asked
for, passed by every path that applies a chat template, and recorded."""

import pytest
import yaml

from promedical.alignment.config import GRPORecipe, SFTRecipe, load_recipe, recipe_path
from promedical.bench.datasets import BenchDataError
from promedical.bench.generating import Decoding

#: Qwen3's switch in miniature: with thinking off the generation prompt carries an empty reasoning block.
QWEN3_LIKE_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def test_the_answer_is_what_follows_the_reasoning():
    assert Decoding().answer("  Call 911 now. ") == "Call 911 now."
    thinking = Decoding(enable_thinking=True)
    assert thinking.answer("<think>chest pain, ACS?</think>\n\nCall 911 now.") == "Call 911 now."
    assert thinking.answer("<think>a</think>b</think> c") == "c", "after the last end of reasoning"
    assert thinking.answer("<think>still thinking when the tokens ran out") is None


def test_generators_pass_and_record_the_setting(tiny_models, tmp_path):
    from promedical.bench.models.hf import HFGenerator
    from promedical.bench.models.loading import ModelOptions, load_tokenizer

    model = tmp_path / "qwen3-like"
    tokenizer = load_tokenizer(str(tiny_models["causal"]))
    tokenizer.chat_template = QWEN3_LIKE_TEMPLATE
    tokenizer.save_pretrained(model)
    for file in tiny_models["causal"].iterdir():
        if not (model / file.name).exists():
            (model / file.name).symlink_to(file)
    off = HFGenerator(str(model), ModelOptions(device="cpu"), Decoding(max_new_tokens=4))
    on = HFGenerator(str(model), ModelOptions(device="cpu"), Decoding(max_new_tokens=4, enable_thinking=True))
    assert off.identity != on.identity and '"enable_thinking": false' in off.identity
    messages = [{"role": "user", "content": "Chest pain?"}]
    rendered = {g: g.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                   **g.decoding.chat_template_kwargs()) for g in (off, on)}
    assert rendered[off].endswith("<think>\n\n</think>\n\n") and not rendered[on].endswith("</think>\n\n")


def test_training_recipes_render_prompts_with_thinking_off_and_the_qwen3_one_says_so():
    for name in ("smoke-grpo", "qwen3-8b-grpo"):
        recipe = load_recipe(name)
        assert isinstance(recipe, GRPORecipe)
        assert recipe.trl_config(check_only=True).chat_template_kwargs == {"enable_thinking": False}
    assert load_recipe("smoke-grpo", enable_thinking=True).trl_config(check_only=True).chat_template_kwargs == {
        "enable_thinking": True}
    assert yaml.safe_load(recipe_path("qwen3-8b-grpo").read_text())["enable_thinking"] is False
    sft = load_recipe("smoke-sft")
    assert isinstance(sft, SFTRecipe) and sft.chat_template_kwargs() == {"enable_thinking": False}


def test_ultramedical_cot_passes_thinking_explicitly_and_hashes_it():
    from promedical.bench.ultramedical.suite import UltraMedicalConfig, lm_eval_model, template_hash

    cot = UltraMedicalConfig(model="m", protocol="cot", device="cpu")
    assert lm_eval_model(cot)[1]["enable_thinking"] is False
    thinking = UltraMedicalConfig(model="m", protocol="cot", device="cpu", enable_thinking=True)
    args = lm_eval_model(thinking)[1]
    assert (args["enable_thinking"], args["think_end_token"]) == (True, "</think>")
    assert template_hash(cot) != template_hash(thinking)
    loglik = UltraMedicalConfig(model="m", protocol="loglik", device="cpu")
    assert "enable_thinking" not in lm_eval_model(loglik)[1]
    with pytest.raises(BenchDataError, match="needs the cot protocol"):
        lm_eval_model(UltraMedicalConfig(model="m", protocol="loglik", device="cpu", enable_thinking=True))
    with pytest.raises(BenchDataError, match="set by --enable-thinking"):
        lm_eval_model(UltraMedicalConfig(model="m", protocol="cot", device="cpu", model_args="enable_thinking=True"))


def test_policy_runs_record_thinking_in_config_and_template_hash(tiny_models, tmp_path):
    from promedical.bench.runner import RunConfig, run

    runs = [run(RunConfig(model=str(tiny_models["causal"]), track="policy", judge=f"rm:{tiny_models['reward']}",
                          output_dir=tmp_path / str(on), limit=1, max_new_tokens=2, device="cpu",
                          enable_thinking=on, progress=False)).results for on in (False, True)]
    assert [r.config["enable_thinking"] for r in runs] == [False, True]
    assert runs[0].tracks["policy"].template_hash != runs[1].tracks["policy"].template_hash
    assert runs[1].tracks["policy"].counts["generation_failures"] == 1, "never closed its reasoning"
