"""The GPT-2 transformer (Radford et al., 2019), with a preallocated KV cache for decoding.

Module and parameter names follow Hugging Face's GPT2LMHeadModel (`transformer.h.0.attn.c_attn.weight`, ...)
so checkpoints map one to one; HF stores those weights transposed (Conv1D), `checkpoint.py` handles that.
Nothing here knows about files or sampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2.checkpoint import PreTrainedModel
from gpt2.config import GPTConfig
from gpt2.cross_entropy import cross_entropy


class KVCache:
    """Keys and values of every layer, in buffers preallocated for up to `max_length` positions.

    Decoding a token writes one slot per layer instead of concatenating tensors, so a step costs one
    token's compute and no reallocation. `length` counts the positions filled so far (shared by all rows).

    With `reserve`, the buffers start with room for that many positions and grow when full, by a quarter
    and at least 64 positions, up to `max_length`: CPU decoding attends over the whole buffer (see
    `_one_query_attention`), so a buffer sized for the finished sequence would be read in full at every
    step (124M, batch 32, 1,024 positions: 1.2 GB per step). Growing copies the filled part once per
    growth, a small fraction of what the steps read.
    """

    GROWTH_MIN = 64

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        max_length: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        reserve: int | None = None,
    ) -> None:
        self.config = config
        self._limit = max_length if reserve is not None else None
        capacity = max_length if reserve is None else min(max_length, _round_up(reserve, self.GROWTH_MIN))
        shape = (config.n_layer, batch_size, config.n_head, capacity, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_length(self) -> int:
        return self._limit if self._limit is not None else self.k.size(3)

    @property
    def capacity(self) -> int:
        """Positions the buffers hold now (`max_length` unless the cache grows)."""
        return self.k.size(3)

    @property
    def batch_size(self) -> int:
        return self.k.size(1)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys/values for `layer`; return all keys/values up to and including them."""
        end = self.length + k.size(2)
        if end > self.capacity:
            self._grow(end)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def _grow(self, needed: int) -> None:
        if needed > self.max_length:
            raise ValueError(f"the KV cache holds {self.max_length} positions; {needed} were asked for")
        wanted = max(needed, self.capacity + max(self.capacity // 4, self.GROWTH_MIN))
        capacity = min(self.max_length, _round_up(wanted, self.GROWTH_MIN))
        for name in ("k", "v"):
            old = getattr(self, name)
            new = old.new_zeros(*old.shape[:3], capacity, old.size(4))
            new[:, :, :, : self.length] = old[:, :, :, : self.length]
            setattr(self, name, new)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the given batch rows (e.g. drop finished sequences)."""
        self.k = self.k[:, rows]
        self.v = self.v[:, rows]

    @classmethod
    def concat(cls, caches: list[KVCache], max_length: int, reserve: int | None = None) -> KVCache:
        """One cache holding the rows of `caches` in order, their ends aligned: a shorter cache's rows get
        left padding (zeros; the caller's attention mask must hide it), so that every row's next position is
        the same slot. Used to add new rows to a batch that is already decoding."""
        first = caches[0]
        length = max(c.length for c in caches)
        merged = cls(first.config, sum(c.batch_size for c in caches), max_length, first.k.device, first.k.dtype,
                     reserve=reserve if reserve is None else max(reserve, length))
        row = 0
        for c in caches:
            rows, start = slice(row, row + c.batch_size), length - c.length
            merged.k[:, rows, :, start:length] = c.k[:, :, :, : c.length]
            merged.v[:, rows, :, start:length] = c.v[:, :, :, : c.length]
            row += c.batch_size
        merged.length = length
        return merged

    def drop_front(self, n: int) -> None:
        """Forget the first `n` positions of every row (e.g. left padding that no remaining row needs).
        The buffers are copied, not sliced: the one-query attention reads them whole, and a product over a
        strided buffer is many times slower (see `_one_query_attention`)."""
        if not 0 <= n <= self.length:
            raise ValueError(f"can drop 0 to {self.length} positions; got {n}")
        self.k = self.k[:, :, :, n:].contiguous()
        self.v = self.v[:, :, :, n:].contiguous()
        self.length -= n
        if self._limit is not None:
            self._limit -= n


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # fused query, key, value
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        kv_cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)
        if T == 1 and x.device.type == "cpu" and not self.training:
            # Over the cache's whole (contiguous) buffer: a matrix product over the filled slice alone
            # would first copy it (see _one_query_attention).
            full_k, full_v = (kv_cache.k[layer], kv_cache.v[layer]) if kv_cache is not None else (k, v)
            y = _one_query_attention(q, full_k, full_v, k.size(2), mask)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal,
                dropout_p=self.attn_dropout if self.training else 0.0,
            )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


def _one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: int,
                         mask: torch.Tensor | None) -> torch.Tensor:
    """Attention of one new query per row over the first `length` positions of `k`/`v`: a decoding step
    on CPU. `mask` is SDPA's boolean mask over those positions (True = may attend).

    PyTorch's CPU flash kernel is built for many queries; for one, in bfloat16, two matrix products and a
    float32 softmax are several times faster. The products run over the whole preallocated cache, positions
    past `length` getting probability 0 (they hold zeros or stale finite values), because a product over
    the slice first copies it, which costs more than the extra positions (docs/benchmarks.md, decoding on
    CPU, has the timings).
    """
    scores = ((q * q.size(-1) ** -0.5) @ k.transpose(-2, -1))[..., :length].float()  # (B, nh, 1, length)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(dim=-1).to(v.dtype)
    if length < k.size(-2):
        probs = F.pad(probs, (0, k.size(-2) - length))
    return probs @ v


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.mlp_width)
        self.act = nn.GELU(approximate="tanh")  # GPT-2's tanh approximation ("gelu_new" in HF)
        self.c_proj = nn.Linear(config.mlp_width, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block (GPT-2 moved LayerNorm to each sub-block's input)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, mask, is_causal, kv_cache, layer):
        x = x + self.attn(self.ln_1(x), mask, is_causal, kv_cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(PreTrainedModel):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.n_positions, config.n_embd),
                drop=nn.Dropout(config.embd_pdrop),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied input/output embeddings
        self.apply(self._init_weights)
        # The paper scales residual-path projections by 1/sqrt(N), N = number of residual layers (2 per block).
        std = config.initializer_range / math.sqrt(2 * config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=std)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count with the tied embedding counted once (124M preset: 124,439,808). Counted from
        the configuration, so that a model whose layers keep their weights as buffers (`quantize_int8`,
        `pack_for_cpu`) counts the same as the model it came from."""
        c = self.config
        C, M = c.n_embd, c.mlp_width
        per_block = (2 * C) + (C * 3 * C + 3 * C) + (C * C + C) + (2 * C) + (C * M + M) + (M * C + C)
        n = c.vocab_size * C + c.n_positions * C + c.n_layer * per_block + 2 * C  # + ln_f
        if exclude_embeddings:
            n -= self.transformer.wpe.weight.numel() + self.transformer.wte.weight.numel()
        return n

    @property
    def device(self) -> torch.device:
        return self.transformer.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The activations' dtype (LayerNorm's: `quantize_int8` keeps it while weights become int8)."""
        return self.transformer.ln_f.weight.dtype

    def new_kv_cache(self, batch_size: int, max_length: int | None = None, reserve: int | None = None) -> KVCache:
        """A KV cache for up to `max_length` positions (default: the context length); with `reserve`, one
        that starts with room for that many and grows (see KVCache)."""
        max_length = max_length or self.config.n_positions
        return KVCache(self.config, batch_size, max_length, self.device, self.dtype, reserve=reserve)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        last_logits_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for `idx` (B, T) and, given `targets` (B, T; -100 = ignore), the mean cross-entropy.

        With `kv_cache`, `idx` holds only the new tokens; their keys/values are appended to the cache.
        `attention_mask` (B, past + T; 1 = real token, 0 = padding) lets rows of different lengths share a
        batch (left padding); positions then count real tokens only, so a padded row computes what it
        would alone. A 3-d `attention_mask` (B, T, past + T; True = query may attend to key) with explicit
        `position_ids` packs several sequences that share a prefix into one row (a context and each of its
        candidate endings, every ending attending to the context and to itself only).
        """
        x = self.hidden_states(idx, kv_cache=kv_cache, attention_mask=attention_mask, position_ids=position_ids)
        if targets is not None:
            logits = self.lm_head(x)
            loss = cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))
            return logits, loss
        if last_logits_only:
            # contiguous: F.linear of a strided (B, 1, C) view may not fold it into one matrix and instead
            # broadcast the weight over B (a copy of the vocabulary projection per row)
            x = x[:, -1:, :].contiguous()
        return self.lm_head(x), None

    def hidden_states(
        self,
        idx: torch.Tensor,
        *,
        kv_cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final hidden states (B, T, n_embd), after `ln_f`: what `lm_head` reads, and what HF's
        GPT2Model returns as `last_hidden_state`. The arguments are `forward`'s."""
        B, T = idx.shape
        past = kv_cache.length if kv_cache is not None else 0
        total = past + T
        if total > self.config.n_positions:
            raise ValueError(f"sequence length {total} exceeds the context length {self.config.n_positions}")
        if kv_cache is not None and total > kv_cache.max_length:
            raise ValueError(f"sequence length {total} exceeds the KV cache's {kv_cache.max_length} positions")

        if attention_mask is not None and attention_mask.dim() == 3 and position_ids is None:
            raise ValueError("a 3-d attention_mask (B, T, past + T) needs explicit position_ids")
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:total]
            else:
                position_ids = torch.arange(past, total, device=idx.device).unsqueeze(0)
        mask, is_causal = self._attention_mask(B, T, past, attention_mask, idx.device)

        x = self.transformer.wte(idx) + self.transformer.wpe(position_ids)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, mask, is_causal, kv_cache, i)
        if kv_cache is not None:
            kv_cache.length = total
        return self.transformer.ln_f(x)

    @staticmethod
    def _attention_mask(
        B: int, T: int, past: int, attention_mask: torch.Tensor | None, device: torch.device
    ) -> tuple[torch.Tensor | None, bool]:
        """The SDPA mask for T new queries over past + T keys; None where `is_causal` or no mask suffices."""
        if attention_mask is not None and attention_mask.dim() == 3:  # given whole: (B, T, past + T)
            if attention_mask.shape != (B, T, past + T):
                raise ValueError(f"a 3-d attention_mask must be (B, T, past + T) = {(B, T, past + T)}, got "
                                 f"{tuple(attention_mask.shape)}")
            return attention_mask.bool().unsqueeze(1), False
        if attention_mask is None:
            if past == 0:
                return None, T > 1  # plain causal: SDPA's fused path
            if T == 1:
                return None, False  # one new token sees every cached position
        q_pos = torch.arange(past, past + T, device=device).view(T, 1)
        k_pos = torch.arange(past + T, device=device).view(1, past + T)
        allowed = k_pos <= q_pos  # (T, S)
        if attention_mask is None:
            return allowed, False
        keys_real = attention_mask[:, : past + T].bool().view(B, 1, 1, past + T)
        # A padding query would see no key at all (NaN in softmax); let every query see itself. Padding
        # positions' outputs are never used, real tokens never attend to padding.
        return (allowed & keys_real) | (k_pos == q_pos), False
