"""A small decoder-only transformer prior over code grids (VQGAN stage 2).

Code grids are read in raster order (row by row; for residual or product codes the stage index
runs fastest), preceded by a start token whose id is the codebook size K. The model predicts
each code from the ones before it, and samples new grids one code at a time.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from audiotools.ml import BaseModel
from torch import nn

from ..errors import ConfigError
from ..training.checkpoint import SafeLoad


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions <= t."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(out.transpose(1, 2).reshape(b, t, c)))


class Block(nn.Module):
    """Pre-norm transformer block: attention then a 4x-wide GELU MLP, each residual."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CodeGPT(SafeLoad, BaseModel):
    """Autoregressive prior over the codes of a VQ image model.

    Args:
        vocab_size: codebook size K; codes are in ``[0, K)`` and id ``K`` is the start token.
        block_size: longest input sequence, at least the codes per grid (``h * w * n``).
        n_layer: transformer blocks.
        n_head: attention heads (must divide ``n_embd``).
        n_embd: embedding width.
        dropout: dropout on embeddings, attention and MLP outputs.
    """

    def __init__(self, vocab_size: Optional[int] = None, block_size: Optional[int] = None, n_layer: int = 4,
                 n_head: int = 4, n_embd: int = 128, dropout: float = 0.0) -> None:
        # Required, but declared with a default: audiotools' ``save`` records only parameters that
        # have one, and ``load`` could not rebuild the model without these two.
        super().__init__()
        if vocab_size is None or block_size is None:
            raise TypeError("CodeGPT needs vocab_size and block_size")
        if n_embd % n_head:
            raise ConfigError(f"n_head={n_head} must divide n_embd={n_embd}")
        if vocab_size < 1 or block_size < 1:
            raise ConfigError(f"vocab_size and block_size must be >= 1, got {vocab_size}, {block_size}")
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_embd = n_embd
        self.dropout = dropout
        self.tok_emb = nn.Embedding(vocab_size + 1, n_embd)  # + the start token
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(n_embd, n_head, dropout) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(n_embd)
        # Predicts codes only: the start token is never a target.
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(_init_weights)

    @property
    def start_token(self) -> int:
        return self.vocab_size

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-code logits.

        Args:
            idx: ``(B, T)`` int64 token ids in ``[0, K]``, ``T <= block_size``.

        Returns:
            ``(B, T, K)`` logits; position t depends on ``idx[:, :t + 1]`` only.
        """
        if idx.dim() != 2 or idx.shape[1] > self.block_size:
            raise ValueError(f"expected token ids of shape (B, T<= {self.block_size}), got {tuple(idx.shape)}")
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        return self.head(self.ln_f(self.blocks(x)))

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` or ``(B, H, W, n)`` codes -> ``(B, L)`` in raster order, stage fastest."""
        if codes.dim() not in (3, 4):
            raise ValueError(f"expected codes of shape (B, H, W) or (B, H, W, n), got {tuple(codes.shape)}")
        return codes.reshape(codes.shape[0], -1)

    def loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of every code given the start token and the codes before it.

        Args:
            codes: ``(B, H, W)`` or ``(B, H, W, n)`` int64 codes in ``[0, K)``.

        Returns:
            Scalar loss (nats per code).
        """
        targets = self.flatten(codes)
        if targets.shape[1] > self.block_size:
            raise ValueError(f"{targets.shape[1]} codes per grid exceed block_size={self.block_size}")
        start = targets.new_full((targets.shape[0], 1), self.start_token)
        logits = self(torch.cat([start, targets[:, :-1]], dim=1))
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))

    @torch.no_grad()
    def sample(self, n: int, grid_shape: Sequence[int], top_k: Optional[int] = None, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw ``n`` code grids, one code at a time (no key/value cache: simple and exact).

        Args:
            n: number of grids.
            grid_shape: ``(H, W)`` or ``(H, W, n_quantizers)``.
            top_k: sample only among the ``top_k`` most likely codes (1 = greedy decoding).
            temperature: divides the logits (> 0).
            generator: random generator for reproducible draws (on the model's device).

        Returns:
            ``(n, *grid_shape)`` int64 codes in ``[0, K)``.
        """
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and not 1 <= top_k:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        length = math.prod(grid_shape)
        if length > self.block_size:
            raise ValueError(f"grid {tuple(grid_shape)} holds {length} codes, more than block_size={self.block_size}")
        was_training = self.training
        self.eval()
        try:
            seq = torch.full((n, 1), self.start_token, dtype=torch.long, device=self.device)
            for _ in range(length):
                logits = self(seq)[:, -1] / temperature
                if top_k is not None and top_k < self.vocab_size:
                    kth = logits.topk(top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
                seq = torch.cat([seq, nxt], dim=1)
        finally:
            self.train(was_training)
        return seq[:, 1:].reshape(n, *grid_shape)


def _init_weights(module: nn.Module) -> None:
    # GPT-2's N(0, 0.02): small logits at the start, so the initial loss is close to log K.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
