"""Launch overhead and DDP throughput: ``%%distributed`` vs a bare ``torchrun`` of the same code.

Both sides run the same body on 2 gloo ranks: one all_reduce (time to first collective, from the
moment the launch is asked for), then a small DDP training loop (steps/s on rank 0), then exit
(wall time of the whole launch). Runs alternate so machine load hits both sides alike.

    python tests/benchmarks/bench_distributed.py            # 3 rounds, 100 steps
    python tests/benchmarks/bench_distributed.py --full     # 7 rounds, 400 steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = """
import time
import torch, torch.distributed as dist
x = torch.ones(1)
dist.all_reduce(x)
first_collective = time.time()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
ddp_model = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(ddp_model.parameters(), lr=0.01)
data, target = torch.randn(64, 256), torch.randint(0, 10, (64,))
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(ddp_model(data), target).backward()
    opt.step()
for _ in range(5):
    step()
start = time.perf_counter()
for _ in range(STEPS):
    step()
steps_per_s = STEPS / (time.perf_counter() - start)
result = (first_collective, steps_per_s)
"""

BARE_SCRIPT = """
import torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
{body}
if rank == 0:
    print("RESULT", *result, flush=True)
dist.barrier()
dist.destroy_process_group()
"""


def bare_torchrun(script: Path) -> tuple[float, float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    asked = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bare torchrun failed:\n{done.stderr[-3000:]}")
    wall = time.time() - asked
    line = next(line for line in done.stdout.splitlines() if "RESULT" in line)
    first, steps = map(float, line.split("RESULT", 1)[1].split())
    return first - asked, wall, steps


def ours(body: str) -> tuple[float, float, float]:
    import jupyter_mlops as mlops

    asked = time.time()
    out = mlops.distributed.run(body, n=2, sink=lambda line: None)
    wall = time.time() - asked
    first, steps = out["result"]
    return first - asked, wall, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="7 rounds of 400 steps")
    args = parser.parse_args()
    rounds = args.rounds or (7 if args.full else 3)
    steps = args.steps or (400 if args.full else 100)
    body = BODY.replace("STEPS", str(steps))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLOPS_HOME"] = str(Path(tmp) / "store")
        script = Path(tmp) / "bare.py"
        script.write_text(BARE_SCRIPT.format(body=body))
        samples: dict[str, list[tuple[float, float, float]]] = {"bare": [], "ours": []}
        for _ in range(rounds):
            samples["bare"].append(bare_torchrun(script))
            samples["ours"].append(ours(body))
    rows = [
        ("time to first all_reduce (s)", 0, False),
        ("launch wall time (s)", 1, False),
        (f"DDP steps/s, rank 0 ({steps} steps)", 2, True),
    ]
    print(f"2 gloo ranks on CPU, {os.cpu_count()} cores, {rounds} alternating rounds")
    print(f"load average before: {load:.1f} (timings on a busy machine are upper bounds)")
    print(f"{'metric':<40}{'bare torchrun':>15}{'%%distributed':>15}{'ratio':>8}{'diff':>9}")
    for name, index, higher_is_better in rows:
        for label, pick in (
            ("median", statistics.median),
            ("best", max if higher_is_better else min),
        ):
            bare = pick(s[index] for s in samples["bare"])
            mine = pick(s[index] for s in samples["ours"])
            row = f"{name}, {label}"
            print(f"{row:<40}{bare:>15.3f}{mine:>15.3f}{mine / bare:>8.2f}{mine - bare:>+9.3f}")


if __name__ == "__main__":
    main()
