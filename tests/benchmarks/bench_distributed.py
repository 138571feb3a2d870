"""Launch overhead and DDP throughput: ``%%distributed`` vs a bare ``torchrun`` of the same code.

Both sides run the same body on 2 gloo ranks: one all_reduce (time to first collective, from the
moment the launch is asked for), then a small DDP training loop (steps/s on rank 0), then exit
(wall time of the whole launch). Runs alternate so machine load hits both sides alike.

A second table times one trivial cell with an all_reduce three ways: a bare ``torchrun`` of it,
a one-shot ``%%distributed`` job, and a round trip through the warm pool.

A third table (``--checkpoint`` runs it alone) times checkpoints of an FSDP2 model on 2 ranks:
``mlops.distributed.save``/``load`` (sharded DCP, every rank writes its own shard) against the
usual alternative, a full state dict gathered to rank 0 and written with ``torch.save`` (loaded
back with ``torch.load`` on rank 0 and broadcast), in one job per round, alternating the order.

    python tests/benchmarks/bench_distributed.py            # 3 rounds, 100 steps
    python tests/benchmarks/bench_distributed.py --full     # 7 rounds, 400 steps
    python tests/benchmarks/bench_distributed.py --checkpoint
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


TRIVIAL = (
    "import torch, torch.distributed as dist\n"
    "x = torch.ones(1)\n"
    "dist.all_reduce(x)\n"
    "result = x.item()\n"
)


def seconds_of(action: object) -> float:
    began = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - began


def trivial_cell_table(tmp: str, rounds: int, pool_cells: int) -> None:
    import jupyter_mlops as mlops
    from jupyter_mlops.distributed import pool

    script = Path(tmp) / "trivial.py"
    script.write_text(BARE_SCRIPT.format(body=TRIVIAL).replace("*result", "result"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bare_args = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", "2", str(script)]  # fmt: skip
    bare, one_shot = [], []
    for _ in range(rounds):
        bare.append(seconds_of(lambda: subprocess.run(bare_args, capture_output=True, env=env)))
        one_shot.append(seconds_of(lambda: mlops.distributed.run(TRIVIAL, n=2, sink=print_none)))
    start = seconds_of(lambda: pool.start(2, backend="gloo"))
    try:
        warm = [seconds_of(lambda: mlops.distributed.run(TRIVIAL)) for _ in range(pool_cells)]
    finally:
        pool.stop()
    warm.sort()
    bare_median = statistics.median(bare)
    print()
    print(f"one trivial cell with an all_reduce, 2 gloo ranks ({pool_cells} warm-pool cells)")
    print(f"{'way':<40}{'seconds':>15}{'vs bare torchrun':>18}")
    rows = [
        ("bare torchrun, median", bare_median),
        ("%%distributed one-shot, median", statistics.median(one_shot)),
        ("warm pool start (once)", start),
        ("warm pool round trip, median", statistics.median(warm)),
        ("warm pool round trip, p90", warm[int(0.9 * (len(warm) - 1))]),
    ]
    for name, value in rows:
        print(f"{name:<40}{value:>15.4f}{value / bare_median:>18.4f}")


def print_none(line: str) -> None:
    pass


CHECKPOINT_CELL = """
import os, time, torch, torch.distributed as dist, jupyter_mlops as mlops
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions, get_model_state_dict, set_model_state_dict)

torch.manual_seed(0)
net = torch.nn.Sequential(*[torch.nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS)])
model = mlops.distributed.fsdp(net, block_cls=torch.nn.Linear)
state = {"model": model}
path = os.path.join(os.environ["MLOPS_JOB_DIR"], "full.pt")
full = StateDictOptions(full_state_dict=True, cpu_offload=True)
loaded = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)

def timed(action):
    dist.barrier()
    start = time.perf_counter()
    action()
    dist.barrier()
    return time.perf_counter() - start

def torch_save():
    gathered = get_model_state_dict(model, options=full)
    if rank == 0:
        torch.save(gathered, path)

def torch_load():
    whole = torch.load(path, weights_only=True) if rank == 0 else {}
    set_model_state_dict(model, whole, options=loaded)

ours, peer = [], []
for i in range(REPEATS):
    sides = [("ours", lambda: mlops.distributed.save(state, i, log=False)), ("peer", torch_save)]
    for name, action in (sides if i % 2 == 0 else sides[::-1]):
        (ours if name == "ours" else peer).append(("save", timed(action)))
    sides = [("ours", lambda: mlops.distributed.load(state)), ("peer", torch_load)]
    for name, action in (sides if i % 2 == 0 else sides[::-1]):
        (ours if name == "ours" else peer).append(("load", timed(action)))
result = (ours, peer, sum(p.numel() for p in net.parameters()))
"""


def checkpoint_table(rounds: int, width: int = 2048, layers: int = 8, repeats: int = 3) -> None:
    import jupyter_mlops as mlops

    cell = (
        CHECKPOINT_CELL.replace("WIDTH", str(width))
        .replace("LAYERS", str(layers))
        .replace("REPEATS", str(repeats))
    )
    ours: dict[str, list[float]] = {"save": [], "load": []}
    peer: dict[str, list[float]] = {"save": [], "load": []}
    params = 0
    for _ in range(rounds):
        mine, theirs, params = mlops.distributed.run(cell, n=2, sink=print_none)["result"]
        for kind, seconds in mine:
            ours[kind].append(seconds)
        for kind, seconds in theirs:
            peer[kind].append(seconds)
    print()
    print(
        f"checkpoint of an FSDP2 model on 2 gloo ranks ({params / 1e6:.0f}M fp32 parameters, "
        f"{params * 4 / 2**20:.0f} MiB), {rounds} jobs x {repeats} alternating repeats"
    )
    print(f"{'operation':<28}{'torch.save full (s)':>20}{'DCP save/load (s)':>19}{'ratio':>8}")
    for kind in ("save", "load"):
        for label, pick in (("median", statistics.median), ("best", min)):
            theirs_s, mine_s = pick(peer[kind]), pick(ours[kind])
            row = f"{kind}, {label}"
            print(f"{row:<28}{theirs_s:>20.3f}{mine_s:>19.3f}{mine_s / theirs_s:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--full", action="store_true", help="7 rounds of 400 steps")
    parser.add_argument("--pool-cells", type=int, default=200, help="warm-pool cells to time")
    parser.add_argument("--checkpoint", action="store_true", help="only the checkpoint table")
    args = parser.parse_args()
    rounds = args.rounds or (7 if args.full else 3)
    if args.checkpoint:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MLOPS_HOME"] = str(Path(tmp) / "store")
            checkpoint_table(rounds)
        return
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
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLOPS_HOME"] = str(Path(tmp) / "store")
        trivial_cell_table(tmp, rounds, args.pool_cells)
        checkpoint_table(rounds)


if __name__ == "__main__":
    main()
