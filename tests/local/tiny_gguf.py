"""Tiny llama-architecture GGUFs with random weights, written with the `gguf` package.

`write_tiny_gguf` carries everything a real chat model file does (an SPM tokenizer with
byte fallback, ChatML special tokens, a chat template, the llama hyper-parameters), loads
in milliseconds and, with greedy sampling, always says the same thing. Only word tokens
have non-zero output rows, so greedy decoding yields readable words and never ends the
turn by itself: tests bound replies with `max_tokens` or stop sequences.

Two variants share its weights and vocabulary:

- `write_embedding_gguf`: the same model naming mean pooling (`llama.pooling_type`), which
  is what makes llama.cpp and llmmux treat a GGUF as an embedding model.
- `write_tool_gguf`: a Hermes-style template that renders `tools` and tool calls
  (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`, as Qwen and Hermes models
  do), tokens for its tags, and weights that make greedy choices predictable: one
  dimension of the residual stream is a constant no layer writes to, and each output row's
  weight on it ranks the tokens (`TOOL_PREFERENCE`); a second dimension is set only by the
  `<tool_call>` token, and makes a newline the next choice. Constrained by the grammar
  llama.cpp builds when a call is required, greedy decoding then calls the tool at once,
  keeps JSON compact, ends numbers early and the turn after one call: a valid call,
  whatever the random weights are. (A free-text string argument would fill with tags: the
  tests' schemas use enums and integers.) Left to choose (`tool_choice: "auto"`), it ends
  the turn at once.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Written for these tests in the shape of Hermes and Qwen 2.5 templates (the shape
# llama.cpp's template analysis finds tool-call markers in).
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "You may call these functions:\n<tools>\n"
    "{%- for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools>\n"
    'To call one, answer <tool_call>\n{"name": <name>, "arguments": <arguments>}\n</tool_call><|im_end|>\n'
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' %}"
    "{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n"
    "{%- if message.content %}{{ message.content }}\n{% endif %}"
    '{%- for call in message.tool_calls %}<tool_call>\n{"name": "{{ call.function.name }}", '
    '"arguments": {{ call.function.arguments | tojson }}}\n</tool_call>\n{% endfor %}<|im_end|>\n'
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
TOOL_TOKENS = ["<tool_call>", "</tool_call>"]
WORDS = [
    "the",
    "a",
    "an",
    "and",
    "of",
    "to",
    "in",
    "is",
    "it",
    "that",
    "cat",
    "dog",
    "bird",
    "fish",
    "tree",
    "river",
    "stone",
    "cloud",
    "rain",
    "sun",
    "moon",
    "star",
    "red",
    "blue",
    "green",
    "quick",
    "slow",
    "lazy",
    "happy",
    "small",
    "large",
    "old",
    "new",
    "hello",
    "world",
    "yes",
    "no",
    "maybe",
    "blue",
    "sky",
    "deep",
    "sea",
    "warm",
    "cold",
    "light",
    "dark",
]
# The tool variant's ranking of tokens, best first (see the module docstring): end of turn,
# the call's tags, then JSON's punctuation (" } { : ,) and a digit (7).
TOOL_PREFERENCE = [
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<0x22>",
    "<0x7D>",
    "<0x7B>",
    "<0x3A>",
    "<0x2C>",
    "<0x37>",
]
PREFERENCE_WEIGHT = 4.0  # per rank: far above what the random weights add to a logit
NEWLINE_AFTER_TAG = 100.0  # and a newline straight after <tool_call>, above everything

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_LAYER = 2
N_CTX_TRAIN = 2048
EMBEDDING_LENGTH = N_EMBD


def _vocab(tool_tokens: bool = False) -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = [], [], []
    for i, special in enumerate(SPECIALS):
        tokens.append(special)
        scores.append(0.0)
        types.append(gguf.TokenType.UNKNOWN if i == 0 else gguf.TokenType.CONTROL)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    for i, word in enumerate(dict.fromkeys(WORDS)):
        tokens.append("\u2581" + word)
        scores.append(-float(i))
        types.append(gguf.TokenType.NORMAL)
    if tool_tokens:  # text, not control tokens: they are part of the reply llama.cpp parses
        tokens += TOOL_TOKENS
        scores += [0.0] * len(TOOL_TOKENS)
        types += [gguf.TokenType.USER_DEFINED] * len(TOOL_TOKENS)
    return tokens, scores, types


def write_tiny_gguf(path: Path, *, seed: int = 7, name: str = "tiny-llama") -> Path:
    """Write the chat model to `path` (about 300 KB) and return the path."""
    return _write(path, seed=seed, name=name)


def write_embedding_gguf(path: Path, *, seed: int = 7) -> Path:
    """Write the embedding variant (mean pooling, `EMBEDDING_LENGTH`-dimensional vectors)."""
    return _write(path, seed=seed, name="tiny-embed", pooling=gguf.PoolingType.MEAN)


def write_tool_gguf(path: Path, *, seed: int = 7) -> Path:
    """Write the tool-calling variant (see the module docstring)."""
    return _write(path, seed=seed, name="tiny-tools", template=TOOL_TEMPLATE, tools=True)


def _write(
    path: Path,
    *,
    seed: int,
    name: str,
    template: str = CHATML_TEMPLATE,
    pooling: gguf.PoolingType | None = None,
    tools: bool = False,
) -> Path:
    tokens, scores, types = _vocab(tool_tokens=tools)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if pooling is not None:
        writer.add_pooling_type(pooling)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(SPECIALS.index("<|im_end|>"))
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)
    if tools:
        # The grammar for a tool call starts with the generation prompt's text, which must
        # tokenize back to itself: SentencePiece's leading space would break that.
        writer.add_add_space_prefix(False)
    writer.add_chat_template(template)
    tensors = _tensors(rng, len(tokens))
    if tools:
        _rank_tokens(tensors, tokens)
    for name_, array in tensors.items():
        writer.add_tensor(name_, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _tensors(rng: np.random.Generator, n_vocab: int) -> dict[str, np.ndarray]:
    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    n_kv = N_EMBD // N_HEAD * N_HEAD_KV
    output = weight(n_vocab, N_EMBD)
    output[: len(SPECIALS) + 256] = 0.0  # only words are ever the greedy choice
    tensors = {
        "token_embd.weight": weight(n_vocab, N_EMBD),
        "output_norm.weight": np.ones(N_EMBD, np.float32),
        "output.weight": output,
    }
    for layer in range(N_LAYER):
        block = f"blk.{layer}."
        tensors.update(
            {
                block + "attn_norm.weight": np.ones(N_EMBD, np.float32),
                block + "attn_q.weight": weight(N_EMBD, N_EMBD),
                block + "attn_k.weight": weight(n_kv, N_EMBD),
                block + "attn_v.weight": weight(n_kv, N_EMBD),
                block + "attn_output.weight": weight(N_EMBD, N_EMBD),
                block + "ffn_norm.weight": np.ones(N_EMBD, np.float32),
                block + "ffn_gate.weight": weight(N_FF, N_EMBD),
                block + "ffn_up.weight": weight(N_FF, N_EMBD),
                block + "ffn_down.weight": weight(N_EMBD, N_FF),
            }
        )
    return tensors


def _rank_tokens(tensors: dict[str, np.ndarray], tokens: list[str]) -> None:
    """Dimension 0 of every token's embedding is a large constant that no layer writes to
    (rows 0 of the attention and feed-forward outputs are zero), so after the final norm
    it is nearly constant too, and an output row's weight on it acts as that token's bias.
    Dimension 1 is large only in `<tool_call>`'s embedding: it marks the position after it."""
    embeddings, output = tensors["token_embd.weight"], tensors["output.weight"]
    embeddings[:, :2] = 0.0
    embeddings[:, 0] = 100.0
    embeddings[tokens.index("<tool_call>"), 1] = 100.0
    for layer in range(N_LAYER):
        tensors[f"blk.{layer}.attn_output.weight"][:2] = 0.0
        tensors[f"blk.{layer}.ffn_down.weight"][:2] = 0.0
    output[:, :2] = 0.0
    for rank, token in enumerate(TOOL_PREFERENCE):
        output[tokens.index(token), 0] = PREFERENCE_WEIGHT * (len(TOOL_PREFERENCE) - rank)
    output[tokens.index("<0x0A>"), 1] = NEWLINE_AFTER_TAG
