"""The tracking store under real faults: racing processes, interrupts, shutdowns, SIGKILL, locks.

Every check counts what reached the SQLite file, read with ``sqlite3`` (not through the code
under test): runs, their status, and metric rows.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager, start_new_kernel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One schema template per module, away from the user's own cache folder."""
    return tmp_path_factory.mktemp("schema-cache")


@pytest.fixture
def home(tmp_path: Path, schema_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(schema_cache))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / ".mlops"))
    monkeypatch.setenv("MLOPS_EXPERIMENT", "faults")
    return tmp_path / ".mlops"


def uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "mlflow.db", timeout=30) as con:
        return con.execute(sql, args).fetchall()


def run_row(home: Path, name: str) -> tuple[str, str, int]:
    """(run id, status, metric rows) of the run called ``name``."""
    [(run_id, status)] = query(home, "SELECT run_uuid, status FROM runs WHERE name = ?", name)
    [(count,)] = query(home, "SELECT count(*) FROM metrics WHERE run_uuid = ?", run_id)
    return run_id, status, count


def tag(home: Path, run_id: str, key: str) -> str | None:
    rows = query(home, "SELECT value FROM tags WHERE run_uuid = ? AND key = ?", run_id, key)
    return rows[0][0] if rows else None


def python(code: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def next_use(home: Path) -> subprocess.CompletedProcess[str]:
    """Another process opens the store, as the next kernel or the server would."""
    return python(
        f"from jupyter_mlops.tracking.client import mlflow_client\nmlflow_client({uri(home)!r})\n"
    )


# --- 1. first use by several processes at once ---------------------------------------------------
WORKER = r"""
import os, sys, time
import mlflow.store.tracking.sqlalchemy_store, mlflow.tracking  # warm: a trial times the store
from jupyter_mlops.tracking import client as tracking_client
print("ready", flush=True)
for line in sys.stdin:
    db, cache, start_at = line.rstrip("\n").split("\t")
    os.environ["XDG_CACHE_HOME"] = cache
    time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        client = tracking_client.mlflow_client(f"sqlite:///{db}")
        client.create_run(client.get_experiment_by_name("Default").experiment_id)
        print("ok", flush=True)
    except BaseException as exc:
        print("error " + " ".join(str(exc).split())[:300], flush=True)
"""


def test_processes_creating_one_fresh_store_at_once_all_succeed(tmp_path: Path):
    from mlflow.store.db.utils import _get_latest_schema_revision

    head = _get_latest_schema_revision()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    trials, failures, unusable = 8, [], 0
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        shared_cache = tmp_path / "cache-shared"
        for trial in range(trials):
            db = tmp_path / f"trial{trial}" / ".mlops" / "mlflow.db"
            # Even trials also race to build the schema template (a machine's very first store).
            cache = tmp_path / f"cache{trial}" if trial % 2 == 0 else shared_cache
            start_at = time.time() + 0.3
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"{db}\t{cache}\t{start_at}\n")
                worker.stdin.flush()
            for worker in workers:
                assert worker.stdout is not None
                answer = worker.stdout.readline().strip()
                if answer != "ok":
                    failures.append(f"trial {trial}: {answer}")
            version = sqlite3.connect(db).execute("SELECT version_num FROM alembic_version")
            runs = sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone()[0]
            if version.fetchone()[0] != head or runs != len(workers):
                unusable += 1
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(10)
    assert failures == [], f"{len(failures)} of {trials * len(workers)} openings failed"
    assert unusable == 0


# --- 2. a store left half-migrated ---------------------------------------------------------------
def half_migrated_store(home: Path, with_run: bool) -> str:
    """A store whose tables are MLflow's newest but whose recorded revision is older.

    That is what two processes migrating one file at once leave behind: one applied the
    migrations, the other's older version stamp won.
    """
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    home.mkdir(parents=True)
    store = SqlAlchemyStore(uri(home), (home / "artifacts").as_uri())
    if with_run:
        store.create_run("0", "someone", 0, [], "kept")
    store.engine.dispose()
    script = ScriptDirectory.from_config(_get_alembic_config(uri(home)))
    older = [r.revision for r in script.walk_revisions()][5]
    with sqlite3.connect(home / "mlflow.db") as con:
        con.execute("UPDATE alembic_version SET version_num = ?", (older,))
    return older


def test_a_half_migrated_store_without_runs_is_rebuilt(home: Path):
    half_migrated_store(home, with_run=False)
    opened = next_use(home)
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert "half-created" in opened.stderr and str(home / "mlflow.db") in opened.stderr
    assert [p.name for p in home.glob("mlflow.db.incomplete-*")]  # set aside, not deleted
    tracked = python(
        "import jupyter_mlops as mlops\nwith mlops.track('after', experiment='faults'):\n"
        "    mlops.log(x=1)\n"
    )
    assert tracked.returncode == 0, tracked.stderr[-2000:]
    assert run_row(home, "after")[1:] == ("FINISHED", 1)


def test_a_half_migrated_store_with_runs_is_named_with_what_to_do(home: Path):
    older = half_migrated_store(home, with_run=True)
    opened = next_use(home)
    assert opened.returncode != 0
    last = opened.stderr.strip().splitlines()[-1]
    assert last.startswith("jupyter_mlops.tracking.store.StoreError: ")
    assert str(home / "mlflow.db") in last and older in last and "1 runs" in last
    assert "mlflow db upgrade" in last
    assert list(home.glob("mlflow.db.backup-*"))  # nothing was changed without a copy
    assert query(home, "SELECT name FROM runs") == [("kept",)]


# --- 3. kernels: interrupt and shutdown while the values are written -----------------------------
LOG_THEN_SAY = """%%track {name} --experiment faults
for i in range({n}):
    mlops.log(x=i)
print("logged", flush=True)
"""


@pytest.fixture
def kernel(home: Path, tmp_path: Path) -> Iterator[tuple[KernelManager, Any]]:
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=dict(os.environ))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def execute(kc: Any, code: str, timeout: float = 120) -> dict[str, Any]:
    # stop_on_error=False throughout: after a failed (or interrupted) cell the kernel aborts the
    # requests already queued, so one sent right after the error reply could come back "aborted".
    msg_id = kc.execute(code, stop_on_error=False)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return dict(reply["content"])


def wait_for_text(kc: Any, msg_id: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and text in msg["content"]["text"]:
            return
        if msg["msg_type"] == "error":
            raise AssertionError(f"the cell failed: {msg['content']['ename']}")


def test_interrupt_during_the_final_flush_keeps_every_value_and_says_killed(home, kernel):
    km, kc = kernel
    assert execute(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops")["status"] == "ok"
    n = 60_000
    msg_id = kc.execute(LOG_THEN_SAY.format(name="interrupted", n=n), stop_on_error=False)
    wait_for_text(kc, msg_id, "logged")
    time.sleep(1.0)  # the fault: Ctrl-C one second into the end-of-cell flush
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=120)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=120)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    run_id, status, count = run_row(home, "interrupted")
    assert (status, count) == ("KILLED", n)
    assert "interrupted while writing" in (tag(home, run_id, "mlops.error") or "")
    assert execute(kc, "%%track after --experiment faults\nmlops.log(x=1)")["status"] == "ok"


def test_kernel_shutdown_during_the_final_flush_keeps_every_value(home, kernel):
    km, kc = kernel
    assert execute(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops")["status"] == "ok"
    n = 100_000
    msg_id = kc.execute(LOG_THEN_SAY.format(name="shut", n=n), stop_on_error=False)
    wait_for_text(kc, msg_id, "logged")
    km.shutdown_kernel()  # graceful: shutdown_request, SIGTERM after 2.5 s, SIGKILL at 5 s
    assert not km.is_alive()
    opened = next_use(home)
    assert opened.returncode == 0, opened.stderr[-2000:]
    _, status, count = run_row(home, "shut")
    assert (status, count) == ("KILLED", n)


def assert_every_value_from_zero(home: Path, run_id: str, counted: int) -> None:
    """x = 0, 1, ... with none missing, through the last value the cell counted.

    The signal may land inside ``mlops.log`` after the value was taken but before the cell's
    counter moved on: then one value more than counted is stored, also correctly.
    """
    rows = query(home, "SELECT value FROM metrics WHERE run_uuid = ? AND key = 'x'", run_id)
    values = sorted(int(v) for (v,) in rows)
    assert values == list(range(len(values)))
    assert len(values) in (counted, counted + 1), (len(values), counted)


TRAIN_UNTIL_STOPPED = """%%track training --experiment faults
n = 0
try:
    while True:
        mlops.log(x=n)
        n += 1
        if n == 60_000:  # more than the store takes in the 5 s a shutdown allows
            print("training", flush=True)
finally:
    open("logged.txt", "w").write(str(n))
"""


def test_kernel_shutdown_during_training_keeps_every_value_and_says_killed(
    home, kernel, tmp_path: Path
):
    km, kc = kernel
    assert execute(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops")["status"] == "ok"
    msg_id = kc.execute(TRAIN_UNTIL_STOPPED, stop_on_error=False)
    wait_for_text(kc, msg_id, "training")
    km.shutdown_kernel()  # graceful: the loop is still running
    assert not km.is_alive()
    logged = int((tmp_path / "logged.txt").read_text())
    opened = next_use(home)
    assert opened.returncode == 0, opened.stderr[-2000:]
    run_id, status, _ = run_row(home, "training")
    # jupyter_client interrupts first, then asks, then sends SIGTERM after 2.5 s, SIGKILL at 5 s.
    assert status == "KILLED"
    assert_every_value_from_zero(home, run_id, logged)


def test_sigterm_during_training_in_a_script_keeps_every_value_and_says_killed(
    home: Path, tmp_path: Path
):
    script = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import jupyter_mlops as mlops\n"
            "with mlops.track('scripted', experiment='faults'):\n"
            "    n = 0\n"
            "    try:\n"
            "        while True:\n"
            "            mlops.log(x=n)\n"
            "            n += 1\n"
            "            if n == 20_000:\n"
            "                print('training', flush=True)\n"
            "    finally:\n"
            f"        open({str(tmp_path / 'logged.txt')!r}, 'w').write(str(n))\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert script.stdout is not None and script.stdout.readline().strip() == "training"
        script.send_signal(signal.SIGTERM)
        _, err = script.communicate(timeout=60)
    finally:
        script.kill()
    assert script.returncode == -signal.SIGTERM  # it still ends as SIGTERM asks
    assert "written at the store's next use" in err
    logged = int((tmp_path / "logged.txt").read_text())
    opened = next_use(home)
    assert opened.returncode == 0, opened.stderr[-2000:]
    run_id, status, _ = run_row(home, "scripted")
    assert status == "KILLED"
    assert_every_value_from_zero(home, run_id, logged)
    assert "SIGTERM" in (tag(home, run_id, "mlops.error") or "")


def test_a_track_left_open_is_flushed_and_ended_at_exit(home: Path):
    n = 20_000
    done = python(
        "import jupyter_mlops as mlops\n"
        "run = mlops.track('left-open', experiment='faults')\n"
        f"for i in range({n}):\n"
        "    mlops.log(x=i)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert run_row(home, "left-open")[1:] == ("FINISHED", n)


# --- 4. a kernel that dies without ending its run -------------------------------------------------
def test_a_run_of_a_sigkilled_process_is_killed_at_next_use_and_never_a_default(home: Path):
    finished = python(
        "import jupyter_mlops as mlops\nwith mlops.track('good', experiment='faults'):\n"
        "    mlops.log(acc=0.9)\n"
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    doomed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nimport jupyter_mlops as mlops\n"
            "run = mlops.track('doomed', experiment='faults')\nmlops.log(acc=0.1)\n"
            "print('ready', flush=True)\ntime.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "ready"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    assert run_row(home, "doomed")[1] == "RUNNING"  # nobody ended it
    register = python(
        "import jupyter_mlops as mlops\n"
        "try:\n"
        "    mlops.register(lambda x: x, name='m')\n"
        "except mlops.MLOpsError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "else:\n"
        "    print('registered')\n"
    )
    assert register.returncode == 0, register.stderr[-2000:]
    run_id, status, _ = run_row(home, "doomed")
    assert status == "KILLED"
    assert f"pid {doomed.pid}" in (tag(home, run_id, "mlops.error") or "")
    # The newest run is the dead one, KILLED now: refused as a default, not silently used.
    assert register.stdout.startswith("MLOpsUsageError"), register.stdout
    assert "'doomed'" in register.stdout and "KILLED" in register.stdout


# --- 5. SQLite busy: another process holds a write transaction ------------------------------------
LOCKER = r"""
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE experiments SET name = name")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""

TRACK_ONE = """
import sys, time
from jupyter_mlops.tracking import client
client.BUSY_BUDGET_S = {budget}
import jupyter_mlops as mlops
client.mlflow_client({uri!r})
print("opened", flush=True)
sys.stdin.readline()
started = time.monotonic()
try:
    with mlops.track({name!r}, experiment="faults"):
        mlops.log(x=1)
    print("ok", round(time.monotonic() - started, 1))
except Exception as exc:
    print("error", type(exc).__name__, exc)
"""


def tracker(home: Path, name: str, budget_s: float) -> subprocess.Popen[str]:
    """A process with the store open, that opens run ``name`` when told."""
    process = subprocess.Popen(
        [sys.executable, "-c", TRACK_ONE.format(budget=budget_s, uri=uri(home), name=name)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "opened"
    return process


def test_a_busy_store_is_waited_out_and_one_that_stays_busy_gives_one_clear_error(home):
    # MLflow's sessions wait 20 s for SQLite's lock; the lock is held longer than that.
    patient, hasty = tracker(home, "patient", budget_s=60), tracker(home, "hasty", budget_s=1)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(home / "mlflow.db"), "24"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        for process in (patient, hasty):
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        answers = [p.communicate(timeout=120)[0].strip() for p in (patient, hasty)]
    finally:
        for process in (locker, patient, hasty):
            process.kill()
            process.wait(10)
    waited, refused = answers
    assert waited.startswith("ok"), waited
    assert run_row(home, "patient")[1:] == ("FINISHED", 1)
    assert refused.startswith("error StoreError the MLflow store "), refused
    assert "stayed locked by another process" in refused and "\n" not in refused


# --- 6. Ctrl-C while the first %%track of a kernel starts MLflow ----------------------------------
@pytest.mark.parametrize("after_s", [0.2, 0.5, 1.0, 2.0])
def test_interrupting_the_first_track_leaves_later_cells_working(home, kernel, after_s: float):
    km, kc = kernel
    assert execute(kc, "%load_ext jupyter_mlops\nimport jupyter_mlops as mlops")["status"] == "ok"
    msg_id = kc.execute("%%track first --experiment faults\nmlops.log(x=1)", stop_on_error=False)
    time.sleep(after_s)  # the fault: Ctrl-C while MLflow is being imported and opened
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=120)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=120)
    later = execute(kc, "%%track second --experiment faults\nmlops.log(x=2)")
    assert later["status"] == "ok", later.get("evalue")
    assert run_row(home, "second")[1:] == ("FINISHED", 1)


# --- 7. Two processes setting the same new tags at once ---------------------------------------
TAGGER = """
import sys, time
from pathlib import Path
from jupyter_mlops.tracking.client import mlflow_client
client = mlflow_client(sys.argv[1])
go, name, keys = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
for key in range(keys):  # both processes insert the same new keys: each a race on its row
    client.set_model_version_tag("net", "1", f"k{key}", name)
    client.set_registered_model_tag("net", f"k{key}", name)
print("done", flush=True)
"""


def test_two_processes_setting_the_same_new_tags_lose_no_call(home: Path, tmp_path: Path):
    from jupyter_mlops.tracking.client import mlflow_client

    client = mlflow_client(uri(home))
    client.create_registered_model("net")
    client.create_model_version("net", "file:///nowhere", run_id=None)
    keys, go = 60, tmp_path / "go"
    taggers = [
        subprocess.Popen(
            [sys.executable, "-c", TAGGER, uri(home), str(go), name, str(keys)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in ("one", "two")
    ]
    for tagger in taggers:
        assert tagger.stdout is not None and tagger.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [t.communicate(timeout=180) for t in taggers]
    assert [t.returncode for t in taggers] == [0, 0], [err[-1500:] for _, err in outputs]
    with sqlite3.connect(home / "mlflow.db") as db:
        version_tags = db.execute("SELECT key, value FROM model_version_tags").fetchall()
        model_tags = db.execute("SELECT key, value FROM registered_model_tags").fetchall()
    for rows in (version_tags, model_tags):  # every key once, holding one writer's value
        assert sorted(k for k, _ in rows) == sorted(f"k{n}" for n in range(keys))
        assert {v for _, v in rows} <= {"one", "two"}
