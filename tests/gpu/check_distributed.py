"""GPU checks of %%distributed, for a machine with NVIDIA GPUs (not collected by pytest).

    python tests/gpu/check_distributed.py [--steps 200]

1. This process touches CUDA first (``is_available()`` and an allocation), which breaks every
   fork-based launcher; our torchrun launch must still work.
2. NCCL all_reduce across every visible GPU (backend auto -> nccl), one rank per GPU, with a
   pushed CUDA tensor arriving on CPU.
3. NCCL with more ranks than GPUs is refused before anything starts.
4. An interrupt of a running job leaves no process behind and frees the GPUs.
5. DDP training throughput inside %%distributed vs the same loop under a bare torchrun.
Prints one PASS/FAIL line per check and exits non-zero if any failed.
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

import torch

import jupyter_mlops as mlops
from jupyter_mlops.environment import gpu_inventory

RESULTS: list[tuple[str, bool, str]] = []


def check(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def wrap(fn: Callable[[], str]) -> Callable[[], str]:
        start = time.monotonic()
        try:
            detail = fn()
            RESULTS.append((name, True, f"{detail} ({time.monotonic() - start:.1f} s)"))
        except Exception:
            RESULTS.append((name, False, traceback.format_exc()))
        print(("PASS" if RESULTS[-1][1] else "FAIL"), name, "-", RESULTS[-1][2], flush=True)
        return fn

    return wrap


def quiet(line: str) -> None:
    del line


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    gpus = len(gpu_inventory())
    print(f"torch {torch.__version__}, {gpus} GPU(s) by nvidia-smi", flush=True)
    if gpus == 0:
        print("FAIL no GPU visible: run this on a GPU machine")
        return 1

    @check("kernel-side CUDA use does not break the launch")
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

    @check("NCCL with more ranks than GPUs is refused up front")
    def _() -> str:
        try:
            mlops.distributed.run("result = 1", n=gpus + 1, backend="nccl", sink=quiet)
        except mlops.MLOpsUsageError as exc:
            assert "NCCL needs one GPU per rank" in str(exc), exc
            return str(exc)
        raise AssertionError("not refused")

    @check("interrupt leaves no process and frees the GPUs")
    def _() -> str:
        home = Path(os.environ["MLOPS_HOME"])
        before = set((home / "jobs").glob("*"))

        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGALRM, interrupt)
        signal.alarm(25)
        try:
            mlops.distributed.run(
                "import time, torch\nx = torch.ones(256, 2**20, device=device)\n"
                "while True:\n    time.sleep(0.1)\n",
                sink=quiet,
            )
        except KeyboardInterrupt:
            pass
        finally:
            signal.alarm(0)
        (job_dir,) = set((home / "jobs").glob("*")) - before
        job = mlops.distributed.job.list_jobs(home)[-1]
        pids = set(job.worker_pids().values())
        assert len(pids) == gpus, pids
        time.sleep(1)
        alive = [p for p in pids if Path(f"/proc/{p}").exists()]
        assert not alive, alive
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert not pids & {int(a) for a in apps if a.isdigit()}, apps
        return f"{len(pids)} workers gone, state {job.state()['state']} ({job_dir.name})"

    body = f"""
import time, torch
torch.manual_seed(0)
dev = torch.device("cuda", local_rank)
net = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(4)]).to(dev)
model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local_rank])
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
data = torch.randn(256, 4096, device=dev)
def step():
    opt.zero_grad()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(data).float().pow(2).mean()
    loss.backward()
    opt.step()
for _ in range(10):
    step()
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range({args.steps}):
    step()
torch.cuda.synchronize()
result = {args.steps} / (time.perf_counter() - start)
"""

    @check("DDP throughput within 2% of a bare torchrun")
    def _() -> str:
        script = Path(tempfile.mkdtemp()) / "bare.py"
        script.write_text(
            "import os, torch, torch.distributed as dist\n"
            "local_rank = int(os.environ['LOCAL_RANK'])\n"
            "torch.cuda.set_device(local_rank)\n"
            "dist.init_process_group('nccl', device_id=torch.device('cuda', local_rank))\n"
            f"{body}\n"
            "if dist.get_rank() == 0:\n    print('RESULT', result, flush=True)\n"
            "dist.destroy_process_group()\n"
        )
        bare_runs, our_runs = [], []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", str(gpus), str(script)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            bare_runs.append(float(done.stdout.split("RESULT", 1)[1].split()[0]))
            our_runs.append(mlops.distributed.run(body, sink=quiet)["result"])
        bare, ours = max(bare_runs), max(our_runs)
        detail = f"bare {bare:.1f} steps/s, ours {ours:.1f} steps/s, ratio {ours / bare:.3f}"
        assert ours >= 0.98 * bare, detail
        return detail

    @check("fsdp() helper trains one step on every GPU")
    def _() -> str:
        out = mlops.distributed.run(
            "import torch, jupyter_mlops as mlops\n"
            "model = mlops.distributed.fsdp(torch.nn.Sequential(torch.nn.Linear(64, 64), "
            "torch.nn.Linear(64, 1)), block_cls=torch.nn.Linear)\n"
            "loss = model(torch.randn(8, 64, device=device)).sum()\n"
            "loss.backward()\n"
            "result = float(loss)\n",
            sink=quiet,
        )
        return f"loss {out['result']:.3f}"

    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
