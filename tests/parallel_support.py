"""A tiny transformer and the training loops the parallelism tests run, on one rank or many.

The test process trains it on one process for the reference losses; ``%%distributed`` cells
import this module (the ranks start in the repository root) and train the same model split by
FSDP2, tensor parallelism, pipeline parallelism or FSDP x TP. Everything is fp32 and seeded, so
the losses must agree to 1e-5.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, DIM, HEADS, SEQ, BATCH, LAYERS = 32, 16, 2, 8, 8, 2
STEPS, LR = 5, 0.5
TP_PLAN = {
    "layers.*.attn.q": "colwise",
    "layers.*.attn.k": "colwise",
    "layers.*.attn.v": "colwise",
    "layers.*.attn.o": "rowwise",
    "layers.*.mlp.up": "colwise",
    "layers.*.mlp.down": "rowwise",
}


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(DIM, DIM, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        head = DIM // HEADS  # -1 heads: a tensor-parallel rank holds only its share of them
        q, k, v = (f(x).view(b, t, -1, head).transpose(1, 2) for f in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.attn, self.mlp = Attention(), MLP()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.layers = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))


def make_model() -> TinyTransformer:
    torch.manual_seed(0)
    return TinyTransformer()


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))


def make_optimizer(model: nn.Module, adam: bool = False) -> torch.optim.Optimizer:
    """SGD for the splits; Adam where a checkpoint must carry optimizer state too."""
    if adam:
        return torch.optim.Adam(model.parameters(), lr=0.05)
    return torch.optim.SGD(model.parameters(), lr=LR)


def reference_losses(steps: int = STEPS, adam: bool = False) -> list[float]:
    """The losses of plain single-process training: what every split must reproduce."""
    model = make_model()
    opt = make_optimizer(model, adam)
    losses = []
    for step in range(steps):
        x, y = batch(step)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def sharded_step(
    model: nn.Module, opt: torch.optim.Optimizer, step: int, dp_rank: int, dp_size: int
) -> float:
    """One data-parallel step: this dp rank's slice of the batch; the loss averaged over ranks."""
    import torch.distributed as dist

    device = next(model.parameters()).device  # CPU here, a GPU in tests/gpu
    x, y = (t.to(device) for t in batch(step))
    share = BATCH // dp_size
    mine = slice(dp_rank * share, (dp_rank + 1) * share)
    loss = loss_fn(model(x[mine]), y[mine])
    opt.zero_grad()
    loss.backward()
    opt.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()


def train_sharded(model: nn.Module, dp_rank: int, dp_size: int, steps: int = STEPS) -> list[float]:
    """Data parallel (FSDP2, alone or over TP): each dp rank takes its slice of the batch."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    return [sharded_step(model, opt, step, dp_rank, dp_size) for step in range(steps)]


def train_pipeline(pipe: Any, steps: int = STEPS) -> list[float]:
    opt = torch.optim.SGD(pipe.module.parameters(), lr=LR)
    device = next(pipe.module.parameters()).device
    losses = []
    for step in range(steps):
        x, y = (t.to(device) for t in batch(step))
        opt.zero_grad()
        losses.append(pipe.step(x, target=y))
        opt.step()
    return losses


def predict(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(batch(99)[0])
