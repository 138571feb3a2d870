"""``%snapshot`` and its sub-commands in a real IPython shell: results, HTML and usage errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from jupyter_mlops.snapshots.results import GcReport, Snapshot, SnapshotDiff, VerifyReport


def run(ip: Any, line: str) -> Any:
    result = ip.run_cell(line)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def usage_error(ip: Any, line: str, capsys: pytest.CaptureFixture[str]) -> str:
    result = ip.run_cell(line)
    assert type(result.error_in_exec).__name__ == "UsageError", line
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return str(result.error_in_exec)


@pytest.fixture
def frames(ip: Any) -> pd.DataFrame:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ip.user_ns.update(df=df, df2=df.assign(c=0.5))
    return df


def test_snapshot_magic_family(ip: Any, frames: pd.DataFrame, tmp_path: Path) -> None:
    snap = run(ip, "%snapshot df --name train --tag stage=raw --message first cut")
    assert isinstance(snap, Snapshot) and snap.ref == "train@v1"
    assert snap.tags == {"stage": "raw"} and snap.message == "first cut"
    assert run(ip, "%snapshot df --name train").bytes_written == 0
    assert run(ip, "%snapshot df2 --name train").version == 2

    loaded = run(ip, "%snapshot load train@v1 -o back")
    assert_frame_equal(loaded, frames)
    assert_frame_equal(ip.user_ns["back"], frames)

    listing = run(ip, "%snapshot list train")
    assert list(listing["ref"]) == ["train@v1", "train@v2"]
    diff = run(ip, "%snapshot diff train@v1 train")
    assert isinstance(diff, SnapshotDiff) and [c.column for c in diff.changes] == ["c"]
    assert isinstance(run(ip, "%snapshot verify"), VerifyReport)
    assert run(ip, "%snapshot verify train@v2").ok
    gc = run(ip, "%snapshot gc --dry-run")
    assert isinstance(gc, GcReport) and gc.dry_run

    (tmp_path / "notes.txt").write_text("hi")
    file_snap = run(ip, f"%snapshot {tmp_path / 'notes.txt'} --name notes")
    assert file_snap.kind == "file"
    restored = run(ip, f"%snapshot load notes --to {tmp_path / 'copy.txt'}")
    assert restored.read_text() == "hi"

    via_umbrella = run(ip, "%mlops snapshot list")
    assert len(via_umbrella) == 3
    assert run(ip, "x = %snapshot df --name other") is None and ip.user_ns["x"].ref == "other@v1"


def test_results_render_as_html(ip: Any, frames: pd.DataFrame) -> None:
    run(ip, "%snapshot df --name train")
    run(ip, "%snapshot df2 --name train")
    for line, needle in [
        ("%snapshot df2 --name train", "Snapshot train@v2"),
        ("%snapshot diff train@v1 train@v2", "SnapshotDiff train@v1 -&gt; train@v2"),
        ("%snapshot verify", "Snapshot verify"),
        ("%snapshot gc --dry-run", "Snapshot gc"),
    ]:
        data = ip.display_formatter.format(run(ip, line))[0]
        assert needle in data["text/html"] and "<script" not in data["text/html"]
        assert data["text/plain"].splitlines()[0] in repr(run(ip, line))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%snapshot df", "required: --name"),
        ("%snapshot", "required"),
        ("%snapshot nothing_here --name x", "no variable, path or URL named 'nothing_here'"),
        ("%snapshot df --name ../etc", "invalid snapshot name"),
        ("%snapshot df --name 'a b'", "invalid snapshot name"),
        ("%snapshot df --name x --tag novalue", "is not KEY=VALUE"),
        ("%snapshot load", "required: ref"),
        ("%snapshot load nope", "no snapshot named 'nope'"),
        ("%snapshot load train@v7", "no version v7"),
        ("%snapshot load train@seven", "bad version"),
        ("%snapshot load train -o 9lives", "not a Python variable name"),
        ("%snapshot diff train", "required: ref_b"),
        ("%snapshot verify a/b", "bad snapshot reference"),
        ("%snapshot gc --force", "unrecognized arguments"),
        ("%snapshot list ..", "invalid snapshot name"),
        ("%snapshot n --name bad_obj", "cannot snapshot a int"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(
    ip: Any, frames: pd.DataFrame, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    run(ip, "%snapshot df --name train")
    ip.user_ns["n"] = 5
    before = sorted(p.as_posix() for p in Path(".mlops/snapshots").rglob("*"))
    error = usage_error(ip, line, capsys)
    assert message in error and "\n" not in error and error.startswith("%snapshot")
    assert sorted(p.as_posix() for p in Path(".mlops/snapshots").rglob("*")) == before


def test_help_lists_the_sub_commands(ip: Any) -> None:
    doc = ip.find_line_magic("snapshot").__doc__
    for sub in ("load REF", "list [NAME]", "diff REF_A REF_B", "verify [REF]", "gc [--dry-run]"):
        assert sub in doc
