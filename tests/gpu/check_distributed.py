"""GPU checks of %%distributed, for a machine with NVIDIA GPUs (not collected by pytest).

    python tests/gpu/check_distributed.py [--steps 30] [--peak-tflops 989]

One command, under 10 minutes on one H200, a summary table at the end:

1. This process touches CUDA first (``is_available()`` and an allocation), which breaks every
   fork-based launcher; our torchrun launch must still work (NCCL all_reduce over every GPU, a
   pushed CUDA tensor arriving on CPU).
2. NCCL with more ranks than GPUs (``-n`` above the GPU count) is refused before anything starts.
3. An interrupt of a running job leaves no process behind and gives the GPU memory back.
4. bf16 FSDP2 training of a small transformer inside %%distributed (``mlops.distributed.fsdp``)
   against the same loop under a plain torchrun (``fully_shard`` with the same
   ``MixedPrecisionPolicy``): within 2%, with tokens/s and MFU against ``--peak-tflops`` (the
   H200's dense bf16 peak, 989 TFLOPS, by default).
5. Sharded checkpoints on NCCL: FSDP2 ``save`` then ``load`` gives back the same weights, and
   ``consolidate`` rebuilds the model on the host.
6. With two or more GPUs, tensor parallelism and a 2-stage pipeline train on NCCL.
Exits non-zero if any check failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="mlops-gpu-check-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the ranks import tests.*

import torch

import jupyter_mlops as mlops
from jupyter_mlops.distributed.job import list_jobs
from jupyter_mlops.environment import gpu_inventory

RESULTS: list[tuple[str, str, str]] = []
H200_BF16_DENSE_TFLOPS = 989.0
REPO = Path(__file__).resolve().parents[2]


def check(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def wrap(fn: Callable[[], str]) -> Callable[[], str]:
        start = time.monotonic()
        try:
            detail = fn()
            verdict = "n/a" if detail.startswith("n/a") else "PASS"
            RESULTS.append((name, verdict, f"{detail} ({time.monotonic() - start:.1f} s)"))
        except Exception:
            RESULTS.append((name, "FAIL", traceback.format_exc()))
        print(RESULTS[-1][1], name, "-", RESULTS[-1][2], flush=True)
        return fn

    return wrap


def quiet(line: str) -> None:
    del line


def gpu_pids() -> set[int]:
    apps = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {int(a) for a in apps if a.isdigit()}


def gpu_memory_used_mb() -> list[int]:
    used = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [int(u) for u in used]


# The training loop both launches run; SHARD is the only line that differs.
MODEL = """
import math, time, torch
import torch.nn.functional as F
from torch import nn

VOCAB, DIM, HEADS, LAYERS, SEQ, BATCH = 32768, 2048, 16, 8, 2048, 4

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.qkv, self.o = nn.Linear(DIM, 3 * DIM, bias=False), nn.Linear(DIM, DIM, bias=False)
        self.up = nn.Linear(DIM, 4 * DIM, bias=False)
        self.down = nn.Linear(4 * DIM, DIM, bias=False)
    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, HEADS, -1).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, DIM))
        return x + self.down(F.gelu(self.up(self.n2(x))))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm, self.head = nn.LayerNorm(DIM), nn.Linear(DIM, VOCAB, bias=False)
    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

torch.manual_seed(0)
dev = torch.device("cuda", torch.cuda.current_device())
net = Net().to(dev)
dense = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("embed"))
SHARD
opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), device=dev)
x, y = tokens[:, :-1], tokens[:, 1:]

def step():
    loss = F.cross_entropy(net(x).flatten(0, 1).float(), y.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    MARK

for _ in range(5):
    step()
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(STEPS):
    step()
torch.cuda.synchronize()
seconds = time.perf_counter() - start
world = torch.distributed.get_world_size()
tokens_per_s = STEPS * BATCH * SEQ * world / seconds
flops_per_token = 6 * dense + 12 * LAYERS * DIM * SEQ  # matmuls fwd+bwd, plus causal attention
result = (tokens_per_s, flops_per_token, torch.cuda.max_memory_allocated() / 2**30)
"""
OURS = (
    "import jupyter_mlops as mlops\n"
    "net = mlops.distributed.fsdp(net, block_cls=Block, precision='bf16')\n"
)
PLAIN = (
    "from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard\n"
    "policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)\n"
    "for block in net.blocks:\n"
    "    fully_shard(block, mp_policy=policy)\n"
    "fully_shard(net, mp_policy=policy)\n"
)


def training_body(shard: str, mark: str, steps: int) -> str:
    return MODEL.replace("SHARD", shard).replace("MARK", mark).replace("STEPS", str(steps))


def plain_torchrun(gpus: int, steps: int) -> tuple[float, float, float]:
    script = Path(tempfile.mkdtemp()) / "plain.py"
    script.write_text(
        "import os, torch, torch.distributed as dist\n"
        "local_rank = int(os.environ['LOCAL_RANK'])\n"
        "torch.cuda.set_device(local_rank)\n"
        "dist.init_process_group('nccl', device_id=torch.device('cuda', local_rank))\n"
        f"{training_body(PLAIN, 'pass', steps)}\n"
        "if dist.get_rank() == 0:\n    print('RESULT', *result, flush=True)\n"
        "dist.destroy_process_group()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         "--nproc-per-node", str(gpus), str(script)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    tokens_per_s, flops, memory = done.stdout.split("RESULT", 1)[1].split()[:3]
    return float(tokens_per_s), float(flops), float(memory)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per run")
    parser.add_argument("--runs", type=int, default=2, help="runs of each side (best is kept)")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    args = parser.parse_args()
    gpus = len(gpu_inventory())
    print(f"torch {torch.__version__}, {gpus} GPU(s) by nvidia-smi", flush=True)
    if gpus == 0:
        print("FAIL no GPU visible: run this on a GPU machine")
        return 1
    began = time.monotonic()

    @check("NCCL launch after the notebook touched CUDA")
    def _() -> str:
        assert torch.cuda.is_available()
        kept = torch.ones(1024, device="cuda")
        pushed = torch.arange(4.0, device="cuda")
        out = mlops.distributed.run(
            "import torch, torch.distributed as dist\n"
            "x = torch.tensor([float(rank + 1)], device=device)\n"
            "dist.all_reduce(x)\n"
            "result = (x.item(), str(device), dist.get_backend(), pushed.device.type,"
            " pushed.sum().item())\n",
            push={"pushed": pushed},
            sink=quiet,
        )
        total, device, backend, pushed_on, pushed_sum = out["result"]
        assert out.backend == "nccl" and backend == "nccl", (out.backend, backend)
        assert total == gpus * (gpus + 1) / 2, total
        assert device == "cuda:0" and pushed_on == "cpu" and pushed_sum == 6.0
        assert kept.sum().item() == 1024  # the notebook's own CUDA work is untouched
        return f"world_size={out.world_size} all_reduce={total} in {out.seconds:.1f} s"

    @check("-n above the GPU count is refused up front")
    def _() -> str:
        try:
            mlops.distributed.run("result = 1", n=gpus + 1, backend="nccl", sink=quiet)
        except mlops.MLOpsUsageError as exc:
            assert "NCCL needs one GPU per rank" in str(exc), exc
            return str(exc)
        raise AssertionError("not refused")

    @check("interrupt frees GPU memory and leaves no process")
    def _() -> str:
        home = Path(os.environ["MLOPS_HOME"])
        before_mb = gpu_memory_used_mb()

        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGALRM, interrupt)
        signal.alarm(40)
        try:
            mlops.distributed.run(
                "import time, torch\nx = torch.ones(256, 2**20, device=device)\n"  # 1 GiB each
                "print('holding', flush=True)\n"
                "while True:\n    time.sleep(0.1)\n",
                sink=quiet,
            )
        except KeyboardInterrupt:
            pass
        finally:
            signal.alarm(0)
        job = list_jobs(home)[-1]
        pids = set(job.worker_pids().values())
        assert len(pids) == gpus, pids
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            any(Path(f"/proc/{p}").exists() for p in pids) or pids & gpu_pids()
        ):
            time.sleep(0.2)
        alive = [p for p in pids if Path(f"/proc/{p}").exists()]
        assert not alive, alive
        assert not pids & gpu_pids()
        after_mb = gpu_memory_used_mb()
        grew = [a - b for a, b in zip(after_mb, before_mb, strict=True)]
        assert max(grew) < 256, f"GPU memory still held after the interrupt: {grew} MB"
        state = job.state()["state"]
        return f"{len(pids)} workers gone, GPU memory back (+{max(grew)} MB), {state}"

    throughput: dict[str, float] = {}

    @check("bf16 FSDP2 throughput within 2% of plain torchrun")
    def _() -> str:
        plain_runs, our_runs = [], []
        body = training_body(OURS, "mlops.distributed.mark_step()", args.steps)
        for _ in range(args.runs):
            plain_runs.append(plain_torchrun(gpus, args.steps))
            out = mlops.distributed.run(body, sink=quiet)
            our_runs.append(out["result"])
        plain = max(plain_runs)
        ours = max(our_runs)
        flops = ours[1]
        mfu = ours[0] * flops / (args.peak_tflops * 1e12 * gpus)
        throughput.update(
            plain_tokens_s=plain[0], ours_tokens_s=ours[0], mfu=mfu, memory_gib=ours[2]
        )
        ratio = ours[0] / plain[0]
        detail = (
            f"plain {plain[0]:,.0f} tokens/s, ours {ours[0]:,.0f} tokens/s, ratio {ratio:.3f}, "
            f"MFU {100 * mfu:.1f}% of {args.peak_tflops:g} TFLOPS x {gpus}, "
            f"peak {ours[2]:.1f} GiB/rank"
        )
        assert ratio >= 0.98, detail
        return detail

    @check("FSDP2 save/load of a sharded checkpoint on NCCL, consolidated on the host")
    def _() -> str:
        out = mlops.distributed.run(
            "import torch, jupyter_mlops as mlops\n"
            "from tests import parallel_support as ps\n"
            "model = mlops.distributed.fsdp(ps.make_model(), block_cls=ps.Block,"
            " precision='fp32')\n"
            "opt = ps.make_optimizer(model, adam=True)\n"
            "state = {'model': model, 'optim': opt}\n"
            "mlops.distributed.save(state, 7)\n"
            "saved = {k: v.full_tensor().clone() for k, v in model.state_dict().items()}\n"
            "with torch.no_grad():\n"
            "    for p in model.parameters():\n"
            "        p.zero_()\n"
            "step = mlops.distributed.load(state)\n"
            "same = all(torch.equal(saved[k], v.full_tensor())"
            " for k, v in model.state_dict().items())\n"
            "result = (step, same, {k: v.cpu() for k, v in saved.items()})\n",
            sink=quiet,
        )
        step, same, saved = out["result"]
        assert step == 7 and same
        from tests.parallel_support import make_model

        rebuilt = mlops.distributed.consolidate(out, make_model).state_dict()
        assert all(torch.equal(rebuilt[k], saved[k]) for k in saved)
        return f"step {step}, {len(saved)} tensors round-trip and consolidate"

    @check("tensor and pipeline parallelism on NCCL (2 GPUs)")
    def _() -> str:
        if gpus < 2:
            return "n/a: one GPU (the CPU suite checks both on gloo)"
        out = mlops.distributed.run(
            "import jupyter_mlops as mlops\n"
            "from tests import parallel_support as ps\n"
            "tp = ps.train_sharded(mlops.distributed.tensor_parallel(ps.make_model(),"
            " ps.TP_PLAN), 0, 1)\n"
            "x, _ = ps.batch(0)\n"
            "pipe = mlops.distributed.pipeline(ps.make_model(), ['layers.1'], 4, example=x,"
            " loss_fn=ps.loss_fn, schedule='1f1b')\n"
            "result = (tp, ps.train_pipeline(pipe))\n",
            n=2,
            sink=quiet,
        )
        from tests.parallel_support import reference_losses

        reference = reference_losses()
        tp, pp = out["result"]
        worst = max(abs(a - b) for run in (tp, pp) for a, b in zip(run, reference, strict=True))
        assert worst < 1e-4, (tp, pp, reference)  # TF32/cuDNN kernels: looser than CPU's 1e-5
        return f"TP and 1F1B pipeline match one CPU process to {worst:.1e}"

    print(f"\n{'check':<72} {'result':<6} detail")
    for name, verdict, detail in RESULTS:
        first = detail.strip().splitlines()[-1] if verdict == "FAIL" else detail
        print(f"{name:<72} {verdict:<6} {first}")
    if throughput:
        print(
            f"\nthroughput: plain torchrun {throughput['plain_tokens_s']:,.0f} tokens/s, "
            f"%%distributed {throughput['ours_tokens_s']:,.0f} tokens/s, "
            f"MFU {100 * throughput['mfu']:.1f}%"
        )
    failed = [name for name, verdict, _ in RESULTS if verdict == "FAIL"]
    print(
        f"{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed "
        f"in {time.monotonic() - began:.0f} s",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(REPO)  # torchrun's ranks start here and import tests.parallel_support
    sys.exit(main())
