"""Build tiny local checkpoints for offline demos and tests (no Hugging Face Hub).

The tokenizer is a byte-level BPE trained on the bundled sample bench and the judge templates; the model
is a 2-layer Qwen3 with random weights (seeded). Such a model exercises every code path that a real
checkpoint does — config detection, tokenisation, chat template, batching — but judges at chance level.

Optional, for a tiny *policy* that is trained afterwards (the smoke reproduction): ``extra_texts`` adds a
corpus to the tokenizer's BPE training text (e.g. the SFT data of the synthetic clinical world);
``extra_tokens`` adds whole strings as single tokens (e.g. :func:`sentence_tokens` of that corpus, which
makes a sentence-level policy: a response is ~10 tokens instead of ~150, so a CPU can train it in minutes);
``vocab_size`` / ``hidden_size`` / ``num_layers`` / ``init_std`` size and initialise the model. The defaults
build exactly the demo/test checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from promedical.bench.prompts import PAIRWISE_TEMPLATE, POINTWISE_TEMPLATE

ModelKind = Literal["causal", "reward"]

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _training_text() -> list[str]:
    from promedical.bench.datasets import load_bench

    texts = [POINTWISE_TEMPLATE, PAIRWISE_TEMPLATE, "Yes No A B Yes. No. A. B."]
    for item in load_bench("sample"):
        texts += [m.content for m in item.messages] + [c.text for c in item.rubric] + [r.text for r in item.responses]
    return texts


def sentence_tokens(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """The sentences of ``texts`` in the form they occur, as ``extra_tokens`` for a sentence-level policy: the
    first sentence of a text as it is, every later one with the single space that precedes it. Sentences end
    at ``.``, ``!`` or ``?`` followed by whitespace; a form is kept when it occurs at least ``min_count`` times."""
    import re
    from collections import Counter

    counts: Counter[str] = Counter()
    for text in texts:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
        counts.update(sentences[:1] + [" " + s for s in sentences[1:]])
    return sorted(form for form, n in counts.items() if n >= min_count)


def build_tokenizer(vocab_size: int = 2048, chat_template: bool = True, extra_texts: Iterable[str] | None = None,
                    extra_tokens: Iterable[str] | None = None):
    """A fast BPE tokenizer trained on bundled text (plus ``extra_texts`` when given); "Yes", "No", "A", "B"
    are single tokens. ``extra_tokens`` (e.g. :func:`sentence_tokens`) are added whole, after everything else:
    the tokenizer splits them out of any text before BPE, so a known sentence is one token."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(  # no progress display: off a terminal it is three blank lines on stdout
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text() + list(extra_texts or ()), trainer=trainer)
    tokenizer.add_tokens(["Yes", "No", " Yes", " No"])
    if extra_tokens:
        tokenizer.add_tokens([AddedToken(t, normalized=False) for t in dict.fromkeys(extra_tokens)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    if chat_template:
        fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(output: str | Path, kind: ModelKind = "causal", chat_template: bool = True, seed: int = 0,
                     extra_texts: Iterable[str] | None = None, extra_tokens: Iterable[str] | None = None,
                     vocab_size: int = 2048, hidden_size: int = 64, num_layers: int = 2,
                     init_std: float = 0.02) -> Path:
    """Write a tiny Qwen3 checkpoint (causal LM, or 1-label sequence classifier for ``reward``) to ``output``.

    Heads have 16 dimensions (``hidden_size // 16`` query heads, half as many key/value heads) and the MLP is
    twice the hidden size, so the defaults give the 2-layer, 64-wide demo model. ``init_std`` is the weights'
    initial standard deviation (Qwen3's ``initializer_range``); a larger one (≈ 1/√hidden) gets a model that is
    trained from scratch for a few hundred steps off its initial plateau sooner."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    if hidden_size % 32:
        raise ValueError(f"hidden_size must be a multiple of 32, got {hidden_size}")
    tokenizer = build_tokenizer(vocab_size=vocab_size, chat_template=chat_template, extra_texts=extra_texts,
                                extra_tokens=extra_tokens)
    heads = hidden_size // 16
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=heads // 2, head_dim=16,
        max_position_embeddings=4096, tie_word_embeddings=True, initializer_range=init_std,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None, num_labels=1,
    )
    torch.manual_seed(seed)
    model = (Qwen3ForSequenceClassification if kind == "reward" else Qwen3ForCausalLM)(config)
    output = Path(output)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output
