"""%%distributed without launching torchrun: flags, job folder, Slurm script, logs, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from jupyter_mlops.context import current_settings
from jupyter_mlops.distributed import errors, job, oneshot, run, worker
from jupyter_mlops.distributed.job import JobSpec, create_job, load_inputs, load_job
from jupyter_mlops.distributed.logs import LogPump
from jupyter_mlops.distributed.plan import JobRequest, plan
from jupyter_mlops.errors import MLOpsUsageError


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-n 0", "-n must be at least 1"),
        ("--backend mpi", "--backend 'mpi'"),
        ("--rdzv 10.0.0.1:29400", "--nnodes/--rdzv need the multinode or slurm executor"),
        ("--nnodes 2", "need both --nnodes N"),
        ("--nnodes 2 --rdzv nohost", "--rdzv takes HOST:PORT"),
        ("--push not_defined_anywhere", "no variable named 'not_defined_anywhere'"),
        ("--pull 1x", "--pull takes comma-separated Python names"),
        ("--gpus a,b", "--gpus takes GPU indices"),
        ("--gpus 97", "no GPU 97 here"),
        ("--timeout -1", "--timeout takes seconds > 0"),
        ("--max-restarts -1", "--max-restarts takes a whole number >= 0, got -1"),
        ("--executor mars", "--executor 'mars'"),
        ("--bogus", "unrecognized arguments"),
        ("status", "unexpected argument 'status'"),
        # NCCL with more ranks than GPUs is refused before anything starts.
        ("--backend nccl -n 64", "NCCL needs one GPU per rank: 64 ranks per node"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(ip: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match="%distributed") as caught:
        ip.run_cell_magic("distributed", line, "result = 1")
    assert message in str(caught.value)
    assert not (current_settings().home / "jobs").exists()  # refused before any job folder


@pytest.mark.parametrize("line", ["", "frobnicate", "status extra", "cancel a b"])
def test_line_magic_takes_status_or_cancel(ip: Any, line: str) -> None:
    with pytest.raises(UsageError, match=r"%distributed status \| %distributed cancel"):
        ip.run_line_magic("distributed", line)


def test_cancel_of_unknown_job_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError, match="no distributed job 'nope'"):
        ip.run_line_magic("distributed", "cancel nope")


def test_job_folder_round_trips_pushed_values(tmp_path: Path) -> None:
    class Scaler:
        def __init__(self, k: int) -> None:
            self.k = k

        def __call__(self, x: int) -> int:
            return self.k * x

    spec = JobSpec(nproc_per_node=2, backend="gloo", pull=("a", "b"), pull_explicit=True)
    created = create_job(tmp_path, "result = 1\n", spec, {"scale": Scaler(3), "n": [1, 2]})
    loaded = load_job(created.dir)
    assert loaded.spec == spec and loaded.push == ("scale", "n")
    assert (created.dir / "cell.py").read_text() == "result = 1\n"
    values = load_inputs(loaded)
    assert values["scale"](5) == 15 and values["n"] == [1, 2]


def test_large_push_warns_and_unpicklable_push_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job, "LARGE_PUSH_BYTES", 10_000)
    spec = JobSpec(nproc_per_node=2, backend="gloo")
    with pytest.warns(UserWarning, match=r"big: 0 MB\) to every rank; for large data save it"):
        create_job(tmp_path, "", spec, {"big": b"x" * 20_000, "small": 1})
    with pytest.raises(MLOpsUsageError, match="--push lock: cannot be pickled"):
        create_job(tmp_path, "", spec, {"lock": threading.Lock()})


def test_root_cause_is_the_earliest_failing_rank(tmp_path: Path) -> None:
    created = create_job(tmp_path, "", JobSpec(nproc_per_node=3, backend="gloo"), {})
    now = time.time()
    for rank, delay, kind in ((0, 0.5, "RuntimeError"), (2, 0.0, "KeyError"), (1, 0.7, "OSError")):
        report = {
            "rank": rank,
            "timestamp": now + delay,
            "error_type": kind,
            "message": f"from {rank}",
            "traceback": f'  File "<cell>", line {rank + 1}\n{kind}: from {rank}\n',
        }
        (created.errors_dir / f"rank-{rank}.json").write_text(json.dumps(report))
    error = oneshot.failure_error(created, 1, [])
    assert error.rank == 2 and [f.rank for f in error.others] == [0, 1]
    rendered = error._render_traceback_()
    assert rendered[0].startswith("DistributedCellError: rank 2 of 3 failed: KeyError: from 2")
    assert '  File "<cell>", line 3' in rendered
    assert "  rank 0: RuntimeError: from 0" in rendered


def test_agent_death_without_rank_reports_names_the_signal(tmp_path: Path) -> None:
    created = create_job(tmp_path, "", JobSpec(nproc_per_node=2, backend="gloo"), {})
    error = oneshot.failure_error(created, -9, ["rendezvous timed out"])
    assert error.rank is None
    assert "torchrun agent was killed by signal 9" in str(error)
    assert "rendezvous timed out" in str(error)


def test_log_pump_splits_ranks_into_files_and_rate_limits(tmp_path: Path) -> None:
    shown: list[str] = []
    clock = [0.0]
    pump = LogPump(tmp_path, shown.append, ranks=(0,), max_lines_per_s=3, clock=lambda: clock[0])
    pump.feed_bytes(b"agent banner\n[rank1]:one\n[rank0]:a\n[rank0]:b\n[rank0]:c\n[rank0]:d\n[ra")
    clock[0] = 1.5
    pump.feed_bytes(b"nk0]:e\n")
    pump.close()
    assert shown[:3] == ["[rank 0] a", "[rank 0] b", "[rank 0] c"]
    assert shown[3].startswith("[jupyter-mlops] 1 lines not shown (over 3/s)")
    assert shown[4] == "[rank 0] e"
    assert (tmp_path / "rank-0.log").read_text() == "a\nb\nc\nd\ne\n"
    assert (tmp_path / "rank-1.log").read_text() == "one\n"
    assert (tmp_path / "agent.log").read_text() == "agent banner\n"


# What gloo and c10d print themselves (copied from real rank logs): file and line, not news.
NATIVE_LINES = (
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
    "[127.0.0.1]:8910. This is typically caused by a remote worker crashing. GLHF!",
    "[E1130 12:00:01.164 ProcessGroupGloo.cpp:143] Gloo connectFullMesh failed with "
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:144] no error",
    "[I1130 12:59:57.774093295 socket.cpp:955] [c10d] The client socket has connected to "
    "[::ffff:127.0.0.1]:40841 on SocketImpl(fd=3)",
    "Exception raised from recvBytes at /pytorch/torch/csrc/distributed/c10d/Utils.hpp:670 "
    "(most recent call first):",
    "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x96",
)


def test_log_pump_shows_no_gloo_or_c10d_lines_but_keeps_them_in_the_file(
    tmp_path: Path,
) -> None:
    shown: list[str] = []
    pump = LogPump(tmp_path, shown.append, ranks=None)
    user = ("step 1 loss 0.5", "see model.cc:12 for the C++ op", '  File "<cell>", line 4')
    for line in (*NATIVE_LINES, *user):
        pump.feed(f"[rank0]:{line}")
    pump.close()
    assert shown == [f"[rank 0] {line}" for line in user]
    assert (tmp_path / "rank-0.log").read_text().splitlines() == [*NATIVE_LINES, *user]


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sbatch``/``scancel`` stand-ins that record what they were given."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    record = tmp_path / "slurm-record"
    record.mkdir()
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\necho "$@" > {record}/sbatch.args\ncat "$2" > {record}/script\necho "4242;c1"\n'
    )
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "$@" > {record}/scancel.args\n')
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_slurm_executor_submits_an_srun_torchrun_script(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = fake_slurm(tmp_path, monkeypatch)
    line = "--executor slurm --nnodes 2 -n 4 --backend nccl --timeout 600 --pull loss"
    result = ip.run_cell_magic("distributed", line, "loss = 0.5\n")
    assert result.state == "submitted" and result.scheduler_id == "4242"
    assert repr(result) == (
        "DistributedResult(state='submitted', world_size=8, nnodes=2, backend='nccl', "
        "executor='slurm', pulled=[])"
    )
    script = (record / "script").read_text()
    assert (record / "sbatch.args").read_text().split()[0] == "--parsable"
    for expected in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=10",
        "srun ",
        '--nnodes "$SLURM_NNODES" --rdzv-backend c10d --rdzv-endpoint "$head_node:29500"',
        "--nproc-per-node 4",
        f"-m jupyter_mlops.distributed.worker {result.job_dir}",
        "export TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE='[rank${rank}]:'",
    ):
        assert expected in script
    assert subprocess.run(["bash", "-n", str(record / "script")]).returncode == 0

    status = ip.run_line_magic("distributed", "status")
    assert [(j.job_id, j.state) for j in status.jobs] == [(result.job_id, "submitted")]
    cancelled = ip.run_line_magic("mlops", "distributed cancel")
    assert cancelled.cancelled == [result.job_id]
    assert (record / "scancel.args").read_text().strip() == "4242"
    assert cancelled.jobs[0].state == "cancelled"


def test_result_html_is_self_contained(tmp_path: Path) -> None:
    from jupyter_mlops.display.distributed import distributed_result_html
    from jupyter_mlops.distributed import DistributedResult

    result = DistributedResult(
        "j1", "ok", 2, 1, "gloo", "local", tmp_path, values={"result": "<b>"}, seconds=4.2
    )
    html = distributed_result_html(result)
    assert "Distributed job j1" in html and "&#x27;&lt;b&gt;&#x27;" in html
    assert "<script" not in html


def test_sbatch_verb_writes_and_submits_the_slurm_script(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = fake_slurm(tmp_path, monkeypatch)
    result = ip.run_cell_magic("distributed", "sbatch --nnodes 3 -n 2 --backend gloo", "x = 1\n")
    assert (result.executor, result.state, result.world_size) == ("slurm", "submitted", 6)
    script = (record / "script").read_text()
    assert script == (result.job_dir / "job.sbatch").read_text()
    assert "#SBATCH --nodes=3" in script and "--gpus-per-node" not in script
    assert f"-m jupyter_mlops.distributed.worker {result.job_dir}" in script
    assert "srun " in script and "--nproc-per-node 2" in script
    with pytest.raises(UsageError, match="submits with --executor slurm only"):
        ip.run_cell_magic("distributed", "sbatch --executor local", "x = 1\n")


GLOO_RESET = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
    "[127.0.0.1]:65241: Connection reset by peer. This is typically caused by a remote worker "
    "hanging or bugs in the application. Check the logs of the remote worker before reporting an "
    "error. GLHF! \U0001f3d6\ufe0f"
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (GLOO_RESET, "Read error [127.0.0.1]:65241: Connection reset by peer."),
        (
            "[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
            "[127.0.0.1]:8910. This is typically caused by a remote worker crashing. Check the "
            "logs of the remote worker before reporting an error. GLHF! \U0001f3d6\ufe0f",
            "Connection closed by peer [127.0.0.1]:8910.",
        ),
        (
            "NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited\n"
            "Exception raised from checkForNCCLErrorsInternal at ProcessGroupNCCL.cpp:1970 "
            "(most recent call first):\n"
            "frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x96\n"
            "frame #1: <unknown function> + 0x5a1e2f (0x7f in libtorch_cuda.so)",
            "NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited",
        ),
        ("KeyError: 'missing'", "KeyError: 'missing'"),  # the user's own message is kept
    ],
)
def test_gloo_and_c10d_noise_is_cut_from_rank_errors(raw: str, clean: str) -> None:
    assert errors.clean_message(raw) == clean


def report(rank: int, timestamp: float, error_type: str, message: str) -> dict[str, Any]:
    return {
        "rank": rank,
        "timestamp": timestamp,
        "error_type": error_type,
        "message": message,
        "traceback": f"{error_type}: {message}\n",
    }


def test_a_rank_that_died_without_an_error_is_the_root_cause(tmp_path: Path) -> None:
    """Rank 1 _exit()ed; rank 0 then failed in a collective and rank 2 was stopped by torchrun."""
    created = create_job(tmp_path, "", JobSpec(nproc_per_node=3, backend="gloo"), {})
    (created.errors_dir / "rank-0.json").write_text(
        json.dumps(report(0, time.time(), "RuntimeError", "Connection closed by peer"))
    )
    exits = {"0": 1, "1": 3, "2": -int(signal.SIGTERM)}
    (created.errors_dir / job.EXITS_FILE).write_text(json.dumps(exits))
    (created.logs_dir / "rank-1.log").write_text("step 1\nstep 2\n")
    error = oneshot.failure_error(created, 1, ["ChildFailedError: ..."])
    assert error.rank == 1
    assert error._render_traceback_()[0] == (
        "DistributedCellError: rank 1 of 3 exited with code 3 without raising a Python error "
        f"(job {created.id})"
    )
    assert error.remote_traceback.splitlines()[1:] == ["step 1", "step 2"]  # its last output
    assert [(f.rank, f.summary) for f in error.others] == [
        (0, "RuntimeError: Connection closed by peer")
    ]


@pytest.mark.parametrize(
    ("exitcode", "summary"),
    [
        (-int(signal.SIGKILL), "was killed by signal 9 (SIGKILL)"),
        (-int(signal.SIGSEGV), "was killed by signal 11 (SIGSEGV)"),
        (137, "exited with code 137"),
    ],
)
def test_how_a_rank_ended_is_named(exitcode: int, summary: str) -> None:
    assert errors.RankExit(0, exitcode).summary == summary


def test_ranks_stopped_by_torchrun_or_that_reported_are_not_blamed_for_dying(
    tmp_path: Path,
) -> None:
    created = create_job(tmp_path, "", JobSpec(nproc_per_node=2, backend="gloo"), {})
    failure = errors.RankFailure(**report(1, 1.0, "ValueError", "bad"))
    stopped = [errors.RankExit(0, -int(signal.SIGTERM)), errors.RankExit(1, 1)]
    error = errors.rank_error(created, "job", [failure], stopped)
    assert error is not None and error.rank == 1
    assert str(error).startswith("rank 1 of 2 failed: ValueError: bad")
    assert errors.rank_error(created, "job", [], stopped[:1]) is None


def test_rank_traceback_keeps_cell_frames_and_drops_ours() -> None:
    """A cell calling one of our functions: the traceback shows the cell, not jupyter_mlops."""
    source = "from jupyter_mlops.distributed import plan\nplan.split_names('1x', '--pull')\n"
    with pytest.raises(MLOpsUsageError) as caught:
        worker.run_cell(source, {})
    shown = worker.failure_report(0, caught.value)["traceback"]
    assert shown.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<cell>", line 2, in <module>',
        "    plan.split_names('1x', '--pull')",
        "jupyter_mlops.errors.MLOpsUsageError: --pull takes comma-separated Python names, got '1x'",
    ]


def test_cancel_is_a_keyboard_interrupt_shown_in_one_line() -> None:
    cancelled = errors.DistributedCancelled("job 1-abc cancelled, all ranks stopped")
    assert isinstance(cancelled, KeyboardInterrupt)
    assert cancelled._render_traceback_() == [
        "KeyboardInterrupt: job 1-abc cancelled, all ranks stopped"
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("x = 1\nresult = (x +\n", "line 2: SyntaxError: '(' was never closed: result = (x +"),
        (
            "if True:\nresult = 1\n",
            "line 2: IndentationError: expected an indented block after "
            "'if' statement on line 1: result = 1",
        ),
        ("result = 1\x00\n", "source code string cannot contain null bytes"),
    ],
)
def test_cell_that_does_not_compile_is_refused_before_any_rank(
    ip: Any, cell: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("distributed", "-n 2", cell)
    assert str(caught.value).startswith("%distributed: the cell does not compile")
    assert str(caught.value).endswith(message)
    assert not (current_settings().home / "jobs").exists()


def test_flags_travel_as_one_request_object() -> None:
    spec = plan(JobRequest(n=3, backend="gloo", pull="a,b", timeout=5))
    assert (spec.nproc_per_node, spec.backend, spec.executor) == (3, "gloo", "local")
    assert (spec.pull, spec.pull_explicit, spec.timeout) == (("a", "b"), True, 5)
    with pytest.raises(
        MLOpsUsageError, match=r"^distributed.run: no flag 'nodes'; the flags are n,"
    ):
        run("result = 1", nodes=2)


# --- parallelism, checkpoints, restarts, per-rank stats (no torchrun) ----------------------------


def test_max_restarts_reaches_torchrun_and_never_the_pool() -> None:
    from jupyter_mlops.distributed.executors import torchrun_args

    spec = plan(JobRequest(n=2, max_restarts=3))
    assert spec.max_restarts == 3
    args = torchrun_args(job.Job("j", Path("/x"), spec), ["--standalone"], "/x/torchrun")
    assert args[args.index("--max-restarts") + 1] == "3"
    assert "--max-restarts" not in torchrun_args(
        job.Job("j", Path("/x"), plan(JobRequest(n=2))), [], "/x"
    )
    assert not JobRequest(max_restarts=1).may_use_pool  # a pool's ranks are never restarted


def test_each_restart_is_explained_once_with_the_rank_and_its_end() -> None:
    spec = JobSpec(nproc_per_node=2, backend="gloo", max_restarts=2)
    made = create_job(current_settings().home, "result = 1", spec, {})
    restarts = made.errors_dir / job.RESTARTS_FILE
    restarts.write_text(
        json.dumps({"attempt": 0, "restarts_left": 1, "max_restarts": 2, "exits": {"1": -9}}) + "\n"
    )
    lines: list[str] = []
    status = oneshot.RankStatus(made, None, lines.append)
    status.poll(final=True)
    first = (
        f"restart 1 of 2: rank 1 of 2 was killed by signal 9 (SIGKILL) without raising a Python "
        f"error (attempt 0 of job {made.id}); every rank starts the cell again (1 restart(s) left)"
    )
    assert lines == [f"[jupyter-mlops] {first}"]
    (made.errors_dir / "attempt-1").mkdir()
    report = worker.failure_report(0, ValueError("bad batch"))
    (made.errors_dir / "attempt-1" / "rank-0.json").write_text(json.dumps(report))
    with restarts.open("a") as out:  # rank 0 raised; rank 1 was stopped by the agent
        out.write(
            json.dumps(
                {"attempt": 1, "restarts_left": 0, "max_restarts": 2, "exits": {"0": 1, "1": -15}}
            )
            + "\n"
        )
    status.poll(final=True)
    assert status.restarts == [
        first,
        f"restart 2 of 2: rank 0 of 2 failed: ValueError: bad batch (attempt 1 of job {made.id}); "
        "every rank starts the cell again (0 restart(s) left)",
    ]
    assert len(lines) == 2  # each restart told once


def test_status_shows_restarts_and_each_ranks_step_time_and_memory(ip: Any) -> None:
    from jupyter_mlops.display.distributed import distributed_status_html
    from jupyter_mlops.distributed.stats import Recorder

    spec = JobSpec(nproc_per_node=2, backend="gloo", max_restarts=1)
    made = create_job(current_settings().home, "result = 1", spec, {})
    (made.errors_dir / job.RESTARTS_FILE).write_text('{"attempt": 0, "exits": {}}\n')
    for rank in (0, 1):
        recorder = Recorder(made.dir, rank, restart=1)
        for _ in range(3):
            recorder.mark()
        recorder.stop()
    status = ip.run_line_magic("distributed", "status")
    (row,) = status.jobs
    assert row.restarts == 1
    assert [(r.rank, r.steps, r.memory_kind, r.restart) for r in row.ranks] == [
        (0, 3, "rss peak", 1),
        (1, 3, "rss peak", 1),
    ]
    assert all(r.memory_mb > 10 and r.step_s_mean is not None for r in row.ranks)
    assert "restarts=1" in repr(status)
    assert "    rank 1: 3 steps, " in repr(status) and " ms/step, rss peak " in repr(status)
    page = distributed_status_html(status)
    assert "per rank (step time, memory)" in page and "rank 0: 3 steps" in page


@pytest.fixture
def one_rank(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A real single-rank gloo group in this process, with a job folder for checkpoints."""
    import torch.distributed as dist

    from jupyter_mlops.distributed.checkpoint import JOB_DIR_ENV

    monkeypatch.setenv(JOB_DIR_ENV, str(tmp_path))
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield tmp_path
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda d, m: d.deepspeed(m, {"zero_optimization": {"stage": 2}}),
            "deepspeed() needs DeepSpeed, which is not installed on the ranks: "
            'pip install "jupyter-mlops[deepspeed]" (or pip install deepspeed)',
        ),
        (
            lambda d, m: d.mesh(dp=2),
            "mesh(dp=2): dp x tp must equal the world size 1; change -n or the mesh shape",
        ),
        (lambda d, m: d.tensor_parallel(m, {}), "tensor_parallel(model, plan): plan maps"),
        (
            lambda d, m: d.tensor_parallel(m, {"0": "diagonal"}),
            "tensor_parallel plan '0': 'diagonal' is not a ParallelStyle",
        ),
        (lambda d, m: d.fsdp(m, precision="int8"), "fsdp(precision='int8'): choose one of bf16"),
        (
            lambda d, m: d.pipeline(m, [], 2, example=None, loss_fn=None),
            "pipeline(split_points=...): give",
        ),
        (
            lambda d, m: d.pipeline(m, ["1"], 2, example=None, loss_fn=None, schedule="zb"),
            "pipeline(schedule='zb'): choose one of gpipe, 1f1b",
        ),
        (lambda d, m: d.save({"m": m}, -1), "save(state, step): step is an int >= 0, got -1"),
        (lambda d, m: d.save([m], 1), "save/load(state): state is a dict such as"),
        (
            lambda d, m: d.save({"optim": __import__("torch").optim.SGD(m.parameters())}, 1),
            "save/load(state): optimizer 'optim' has none of the parameters",
        ),
    ],
)
def test_helper_mistakes_are_one_line_usage_errors(one_rank: Path, call: Any, message: str) -> None:
    import torch

    import jupyter_mlops as mlops

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with pytest.raises(MLOpsUsageError) as caught:
        call(mlops.distributed, model)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_save_then_load_restores_model_optimizer_and_values(one_rank: Path) -> None:
    import torch

    import jupyter_mlops as mlops
    from jupyter_mlops.distributed import checkpoint

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(3, 4)).sum().backward()
    optim.step()
    assert mlops.distributed.load({"model": model, "optim": optim}) is None  # nothing saved yet
    for step in (1, 2, 3):
        mlops.distributed.save({"model": model, "optim": optim, "epoch": step}, step, keep=2)
    assert [s for s, _ in checkpoint.complete_steps(one_rank / "checkpoints")] == [2, 3]
    # A step a dead rank began writing (no mlops-checkpoint.json) is never the latest.
    (one_rank / "checkpoints" / "step-000000009").mkdir()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    moments = optim.state_dict()["state"][0]["exp_avg"].clone()

    torch.manual_seed(1)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    fresh_optim = torch.optim.Adam(fresh.parameters(), lr=0.1)
    state = {"model": fresh, "optim": fresh_optim, "epoch": 0}
    assert mlops.distributed.load(state) == 3
    assert state["epoch"] == 3
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())
    assert torch.equal(fresh_optim.state_dict()["state"][0]["exp_avg"], moments)
    older = {"model": fresh, "optim": fresh_optim, "epoch": 0}
    assert (
        mlops.distributed.load(older, checkpoint=one_rank / "checkpoints" / "step-000000002") == 2
    )
    assert older["epoch"] == 2
