"""Magic arguments are split as a shell would (quotes group words and are removed), in every
magic; and the MLflow settings a user already has (MLFLOW_EXPERIMENT_NAME, MLFLOW_REGISTRY_URI)
are honoured by %%track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

from tests.tracking_support import all_runs, client_for


def run(ip: Any, code: str) -> Any:
    result = ip.run_cell(code)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_quoted_free_text_is_stored_without_its_quotes(ip: Any, store: Path) -> None:
    ip.user_ns["df"] = pd.DataFrame({"a": [1, 2, 3]})
    snap = run(ip, '%snapshot df --name quoted --message "first cut"')
    assert snap.message == "first cut"
    run(
        ip,
        "%%track 'my run' --experiment \"quoted exp\" --tag 'note=two words' --tag k=\"v w\"\n"
        "pass\n",
    )
    (tracked,) = all_runs(store)
    assert tracked.info.run_name == "my run"
    assert client_for(store).get_experiment(tracked.info.experiment_id).name == "quoted exp"
    assert tracked.data.tags["note"] == "two words" and tracked.data.tags["k"] == "v w"
    gate = run(
        ip, f'%gate "tags.note == \'two words\'" --run {tracked.info.run_id} --reason "tour"'
    )
    assert gate and gate.reason == "tour"
    listed = run(ip, "%runs --experiment 'quoted exp' --filter \"tags.note = 'two words'\"")
    assert list(listed.name) == ["my run"]


def test_an_unclosed_quote_is_a_one_line_usage_error(ip: Any, store: Path) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("runs", '--filter "params.lr = 0.1')
    assert str(info.value) == (
        "%runs: no closing quotation in '--filter \"params.lr = 0.1'; see %runs? for usage"
    )


def test_mlflow_experiment_name_and_registry_uri_are_honoured(
    ip: Any, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-mlflow-env")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry)
    seen = run(ip, "%%track\nimport mlflow\nmlflow.get_registry_uri()\n")
    (tracked,) = all_runs(store)
    assert client_for(store).get_experiment(tracked.info.experiment_id).name == "from-mlflow-env"
    assert seen == registry
    status = run(ip, "%mlops status")
    assert status.settings.sources["experiment"] == "env MLFLOW_EXPERIMENT_NAME"
    monkeypatch.setenv("MLOPS_EXPERIMENT", "ours")  # our own variable wins over MLflow's
    run(ip, "%%track\npass\n")
    names = {client_for(store).get_experiment(r.info.experiment_id).name for r in all_runs(store)}
    assert names == {"from-mlflow-env", "ours"}


def test_quotes_are_removed_once_so_a_quoted_expression_keeps_its_inner_quotes(
    ip: Any, store: Path
) -> None:
    run(ip, "%%track quoted --tag 'note=a'\npass\n")
    (tracked,) = all_runs(store)
    # The whole expression starts and ends with the same quote: shell splitting removes the outer
    # pair only; a second unquoting would strip those inner quotes and fail to parse it.
    gate = run(ip, f"%gate \"'a' == tags.note and tags.note == 'a'\" --run {tracked.info.run_id}")
    assert gate and gate.checks["passed"].tolist() == [True]
