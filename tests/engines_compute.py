"""Real compute engines on 127.0.0.1 for the tests: a single-node Slurm cluster and a Ray head.

Slurm comes from Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them): the session
fixture ``slurm_cluster`` writes a ``slurm.conf`` in a temporary folder, generates a munge key,
starts ``munged``, ``slurmctld`` and ``slurmd`` on loopback ports, waits (bounded) until the node
is idle, and stops all three at the end. It is skipped only where the machine cannot start the
daemons (not root, or the packages absent outside CI); under CI (``CI`` set) that is a failure.

Ray runs from ``.venv-ray`` (``.ci/run`` makes it): ``ray_head`` starts ``ray start --head`` on
127.0.0.1 and ``ray stop`` ends it.

Loaded as a pytest plugin by tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RAY_VENV = REPO / ".venv-ray"
START_TIMEOUT_S = 60.0
SLURM_DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "scancel", "squeue")

SLURM_CONF = """\
ClusterName=mlops-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge/munge.socket
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=300
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=mlops Nodes=ALL Default=NO MaxTime=INFINITE State=UP
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cannot_start(reason: str) -> None:
    """Skip where the machine cannot run the daemons; in CI that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"Slurm cannot start in CI: {reason}", pytrace=False)
    pytest.skip(f"a real Slurm cannot start on this machine: {reason}")


@dataclass
class SlurmCluster:
    """munged + slurmctld + slurmd from one generated config, each in a session of its own."""

    dir: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.dir / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> SlurmCluster:
        for sub in ("munge", "state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "munge", 0o700)
        key = self.dir / "munge" / "munge.key"
        subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
        os.chmod(key, 0o400)
        self.conf.write_text(
            SLURM_CONF.format(
                host=self.host,
                dir=self.dir,
                ctld_port=free_port(),
                d_port=free_port(),
                cpus=max(2, os.cpu_count() or 2),
            )
        )
        munge = self.dir / "munge"
        self.spawn(
            "munged",
            ["munged", "-F", "--force", f"--key-file={key}", f"--socket={munge}/munge.socket",
             f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
             f"--seed-file={munge}/munged.seed"],
        )  # fmt: skip
        self.wait_for(lambda: (munge / "munge.socket").exists(), "munged's socket")
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self.spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.host])
        self.wait_for(self.node_idle, "the Slurm node to be idle")
        return self

    def spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "ab")  # noqa: SIM115 - kept open by the child
        self.processes.append(
            subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        )
        log.close()

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **self.env}, timeout=20
        )

    def node_idle(self) -> bool:
        done = self.run("sinfo", "-h", "-N", "-o", "%t")
        return done.returncode == 0 and done.stdout.strip().startswith("idle")

    def job_state(self, slurm_id: str) -> str:
        """The job's state (``squeue``, then ``scontrol`` for finished jobs)."""
        done = self.run("scontrol", "show", "job", slurm_id)
        for word in done.stdout.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        return "UNKNOWN"

    def show_job(self, slurm_id: str) -> dict[str, str]:
        done = self.run("scontrol", "show", "job", slurm_id)
        return dict(w.split("=", 1) for w in done.stdout.split() if "=" in w)

    def wait_for(self, ready: object, what: str, timeout: float = START_TIMEOUT_S) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tail = "\n".join(self.log_tail())
                self.stop()
                pytest.fail(f"Slurm: waited for {what} in vain:\n{tail}", pytrace=False)
            time.sleep(0.2)

    def log_tail(self) -> list[str]:
        lines = []
        for log in sorted(self.dir.glob("*.log")) + sorted(self.dir.glob("*.out")):
            lines += [f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-8:]]
        return lines

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A single-node Slurm on 127.0.0.1 for the whole session (see the module docstring)."""
    if os.geteuid() != 0:
        cannot_start("slurmd and munged run as root here, and the tests are not root")
    missing = [tool for tool in SLURM_DAEMONS if shutil.which(tool) is None]
    if missing:
        cannot_start(f"{', '.join(missing)} not installed: apt-get install -y slurm-wlm munge")
    # a short path: munge's socket path must fit in sun_path (108 bytes)
    cluster = SlurmCluster(Path(tmp_path_factory.mktemp("slurm", numbered=True)))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class RayHead:
    """``ray start --head`` from ``.venv-ray`` on a free port; ``ray stop`` ends it."""

    port: int
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def ray_tool() -> Path:
    ray = RAY_VENV / "bin" / "ray"
    if not ray.exists():
        pytest.fail(f"{ray} is missing: run .ci/run, which creates {RAY_VENV.name}", pytrace=False)
    return ray


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A local Ray head on 127.0.0.1 (token auth off: loopback only) for the whole session."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = RayHead(free_port(), {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    started = subprocess.run(
        [str(ray_tool()), "start", "--head", "--port", str(head.port), "--num-cpus", "4",
         "--include-dashboard=false", "--node-ip-address", "127.0.0.1"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"ray start --head failed:\n{started.stdout}\n{started.stderr}", pytrace=False)
    try:
        yield head
    finally:
        subprocess.run(
            [str(ray_tool()), "stop", "--force"], env=env, capture_output=True, timeout=120
        )
