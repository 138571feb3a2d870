"""Every REST route over a store filled through the Python API, through a real Jupyter server."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tornado.httpclient import HTTPClientError

from tests.server_support import populate

NOTEBOOK = "project/train.ipynb"
GET_ROUTES = [
    "runs",
    "runs/0123456789abcdef0123456789abcdef",
    "snapshots",
    "snapshots/customers",
    "models",
    "models/churn",
    "drift",
    "lineage",
]


@pytest.fixture(scope="module")
def filled_project(
    template_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    project = tmp_path_factory.mktemp("server-api") / "project"
    populate(project, template_store)
    return project


@pytest.fixture
def project(filled_project: Path, jp_root_dir: Path) -> Path:
    """A private copy per test: promotions in one test do not move aliases in another."""
    return Path(shutil.copytree(filled_project, jp_root_dir / "project"))


async def get(jp_fetch: Any, route: str, **params: Any) -> dict[str, Any]:
    params.setdefault("path", NOTEBOOK)
    response = await jp_fetch("jupyter-mlops", "api", *route.split("/"), params=params)
    assert response.code == 200
    return json.loads(response.body)


async def post(jp_fetch: Any, route: str, body: Any, **kwargs: Any) -> dict[str, Any]:
    response = await jp_fetch(
        "jupyter-mlops",
        "api",
        *route.split("/"),
        method="POST",
        params={"path": NOTEBOOK},
        body=body if isinstance(body, str) else json.dumps(body),
        **kwargs,
    )
    assert response.code == 200
    return json.loads(response.body)


async def refused(jp_fetch: Any, route: str, *, method: str = "GET", **kwargs: Any) -> Any:
    params = kwargs.pop("params", {"path": NOTEBOOK})
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "jupyter-mlops", "api", *route.split("/"), method=method, params=params, **kwargs
        )
    return info.value


async def test_runs_come_in_pages_newest_first(jp_fetch: Any, project: Path) -> None:
    first = await get(jp_fetch, "runs", limit=2)
    assert first["experiment"] == "train"
    assert [r["name"] for r in first["runs"]] == ["drift-check", "wider"]
    assert first["next_page_token"]
    second = await get(jp_fetch, "runs", limit=2, page_token=first["next_page_token"])
    assert [r["name"] for r in second["runs"]] == ["baseline"]
    assert second["next_page_token"] is None
    baseline = second["runs"][0]
    assert baseline["params"] == {"epochs": "5", "lr": "0.1"}
    assert baseline["metrics"]["val_acc"] == pytest.approx(0.76)
    assert baseline["status"] == "FINISHED"
    assert {"loss", "val_acc"} <= set(first["metric_keys"])


async def test_runs_sort_and_filter_on_the_server(jp_fetch: Any, project: Path) -> None:
    best = await get(jp_fetch, "runs", sort="-metrics.val_acc", filter="params.epochs = '5'")
    assert [r["name"] for r in best["runs"]] == ["wider", "baseline"]


async def test_runs_of_a_folder_without_store_are_empty_and_nothing_is_created(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    (jp_root_dir / "empty").mkdir()
    for route in ("runs", "snapshots", "models", "drift"):
        answer = await get(jp_fetch, route, path="empty")
        assert not any(answer.get(k) for k in ("runs", "names", "models", "reports")), answer
    assert not (jp_root_dir / "empty" / ".mlops").exists()
    assert not (jp_root_dir / ".mlops").exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "between 1 and 1000"),
        ({"limit": "ten"}, "whole number"),
        ({"sort": "size"}, "sort by metrics.NAME"),
        ({"page_token": "not-a-token"}, "token"),
        ({"filter": "metrics.acc >>> 1"}, ""),
    ],
)
async def test_bad_run_parameters_are_400(
    jp_fetch: Any, project: Path, params: dict[str, str], message: str
) -> None:
    error = await refused(jp_fetch, "runs", params={"path": NOTEBOOK, **params})
    assert error.code == 400
    assert message in json.loads(error.response.body)["message"]


async def test_run_detail_has_curves_inputs_and_artifacts(jp_fetch: Any, project: Path) -> None:
    page = await get(jp_fetch, "runs", sort="start_time")
    baseline = page["runs"][0]
    detail = await get(jp_fetch, f"runs/{baseline['run_id']}")
    assert detail["run"]["name"] == "baseline"
    assert detail["experiment"] == "train"
    assert detail["inputs"] == ["customers@v1"]
    assert detail["curves"]["val_acc"]["steps"] == [0, 1, 2, 3, 4]
    assert detail["curves"]["loss"]["values"][0] == pytest.approx(1.0)
    assert any(a.startswith("gates/") for a in detail["artifacts"])  # the v1 promotion


async def test_unknown_and_malformed_run_ids(jp_fetch: Any, project: Path) -> None:
    missing = await refused(jp_fetch, "runs/0123456789abcdef0123456789abcdef")
    assert missing.code == 404
    assert "no run" in json.loads(missing.response.body)["message"]
    bad = await refused(jp_fetch, "runs/" + quote("x;y", safe=""))
    assert bad.code == 400


async def test_snapshots_versions_schema_and_diff(jp_fetch: Any, project: Path) -> None:
    listing = await get(jp_fetch, "snapshots")
    (customers,) = listing["names"]
    assert customers["name"] == "customers"
    assert [v["version"] for v in customers["versions"]] == [1, 2]
    assert customers["versions"][1]["message"] == "new month"
    assert customers["versions"][0]["rows"] == 500 and customers["versions"][0]["bytes"] > 0
    detail = await get(jp_fetch, "snapshots/customers", version="2", diff="1")
    assert detail["version"] == 2
    assert [c["name"] for c in detail["schema"]] == ["age", "plan", "churned"]
    age = detail["schema"][0]
    assert age["type"] == "float64" and age["stats"]["mean"] > 50
    assert detail["diff"]["a"] == "customers@v1" and detail["diff"]["b"] == "customers@v2"
    assert {"column": "age", "change": "changed"}.items() <= detail["diff"]["changes"][0].items()
    assert (await get(jp_fetch, "snapshots/customers"))["diff"] is None


@pytest.mark.parametrize(
    ("route", "params", "code"),
    [
        ("snapshots/nothing", {}, 404),
        ("snapshots/customers", {"version": "9"}, 404),
        ("snapshots/customers", {"diff": "v1"}, 400),
        ("snapshots/" + quote("bad name", safe=""), {}, 400),
        ("snapshots/" + quote("..", safe=""), {}, 400),
        ("models/nothing", {}, 404),
        ("models/a@b", {}, 400),
        ("models/x\n", {}, 400),
        ("drift/0123456789abcdef0123456789abcdef/report", {}, 404),
    ],
)
async def test_unknown_names_404_and_invalid_names_400(
    jp_fetch: Any, project: Path, route: str, params: dict[str, str], code: int
) -> None:
    error = await refused(jp_fetch, route, params={"path": NOTEBOOK, **params})
    assert error.code == code
    assert json.loads(error.response.body)["message"]


async def test_models_list_versions_aliases_and_gate_history(jp_fetch: Any, project: Path) -> None:
    listing = await get(jp_fetch, "models")
    assert listing["models"] == [
        {
            "name": "churn",
            "latest_version": 2,
            "versions": 2,
            "aliases": {"champion": 1},
            "error": None,
        }
    ]
    detail = await get(jp_fetch, "models/churn")
    assert detail["aliases"] == {"champion": 1}
    v2, v1 = detail["versions"]
    assert (v2["version"], v2["run_name"], v2["aliases"], v2["gates"]) == (2, "wider", [], [])
    assert v1["aliases"] == ["champion"] and v1["snapshots"] == ["customers@v1"]
    (decision,) = v1["gates"]
    assert decision["decision"] == "promoted" and decision["alias"] == "champion"


async def test_a_failing_gate_is_answered_recorded_and_moves_nothing(
    jp_fetch: Any, project: Path
) -> None:
    answer = await post(
        jp_fetch,
        "models/churn/promote",
        {"alias": "champion", "require": ["metrics.val_acc >= 0.95"], "reason": "panel"},
    )
    assert answer["passed"] is False and answer["moved"] is False
    assert answer["decision"] == "rejected" and answer["version"] == 2
    assert answer["checks"][0]["name"] == "metrics.val_acc >= 0.95"
    assert answer["checks"][0]["passed"] is False
    assert all(Path(p).is_file() for p in answer["reports"])
    detail = await get(jp_fetch, "models/churn")
    assert detail["aliases"] == {"champion": 1}
    assert detail["versions"][0]["gates"][0]["decision"] == "rejected"


async def test_a_passing_gate_moves_the_alias(jp_fetch: Any, project: Path) -> None:
    answer = await post(
        jp_fetch,
        "models/churn/promote",
        {"alias": "champion", "require": ["metrics.val_acc >= 0.9"], "vs": "champion"},
    )
    assert answer["passed"] is True and answer["moved"] is True and answer["previous"] == 1
    assert [c["passed"] for c in answer["checks"]] == [True, True, True]
    assert (await get(jp_fetch, "models/churn"))["aliases"] == {"champion": 2}


async def test_a_dry_run_with_a_drift_check_moves_nothing(jp_fetch: Any, project: Path) -> None:
    answer = await post(
        jp_fetch,
        "models/churn/promote",
        {
            "alias": "staging",
            "version": 1,
            "reference": "customers@v1",
            "current": "customers@v2",
            "max_drift_share": 0.5,
            "dry_run": True,
        },
    )
    assert answer["passed"] is True and answer["moved"] is False
    assert answer["decision"] == "dry-run"
    assert answer["checks"][0]["name"] == "drift customers@v1 -> customers@v2"
    assert "staging" not in (await get(jp_fetch, "models/churn"))["aliases"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"require": ["metrics.val_acc > 0"]}, "give the alias"),
        ({"alias": "champion", "min_delta": "big"}, "min_delta must be a float"),
        ({"alias": "champion", "force": True}, "unknown field 'force'"),
        ({"alias": "latest", "require": ["metrics.val_acc > 0"]}, "alias 'latest'"),
        ({"alias": "champion"}, "nothing to check"),
        ({"alias": "champion", "require": ["metrics.val_acc >"]}, ""),
    ],
)
async def test_bad_promote_bodies_are_400(
    jp_fetch: Any, project: Path, body: Any, message: str
) -> None:
    error = await refused(
        jp_fetch,
        "models/churn/promote",
        method="POST",
        body=body if isinstance(body, str) else json.dumps(body),
    )
    assert error.code == 400
    assert message in json.loads(error.response.body)["message"]


async def test_promoting_an_unknown_model_is_404(jp_fetch: Any, project: Path) -> None:
    error = await refused(
        jp_fetch, "models/ghost/promote", method="POST", body=json.dumps({"alias": "x"})
    )
    assert error.code == 404


async def test_drift_reports_list_and_open(jp_fetch: Any, project: Path) -> None:
    listing = await get(jp_fetch, "drift")
    (report,) = listing["reports"]
    assert report["run_name"] == "drift-check"
    assert (report["reference"], report["current"]) == ("customers@v1", "customers@v2")
    assert report["share_drifted"] == pytest.approx(1 / 3)
    opened = await get(jp_fetch, f"drift/{report['run_id']}/{report['report']}")
    assert opened["html"].lstrip().lower().startswith("<!doctype html")
    assert "customers@v2" in opened["html"]
    traversal = await refused(jp_fetch, f"drift/{report['run_id']}/" + quote("../../cell", safe=""))
    assert traversal.code == 404


@pytest.mark.parametrize("route", GET_ROUTES)
@pytest.mark.parametrize("path", ["../outside", "/etc", "project/../../x"])
async def test_paths_outside_the_root_are_refused_on_every_route(
    jp_fetch: Any, project: Path, route: str, path: str
) -> None:
    error = await refused(jp_fetch, route, params={"path": path})
    assert error.code == 400
    assert "root" in json.loads(error.response.body)["message"]


@pytest.mark.parametrize("route", [*GET_ROUTES, "models/churn/promote", "drift/a/b"])
async def test_every_route_needs_a_token(jp_fetch: Any, project: Path, route: str) -> None:
    method = "POST" if route.endswith("promote") else "GET"
    error = await refused(
        jp_fetch,
        route,
        method=method,
        headers={"Authorization": ""},
        **({"body": json.dumps({"alias": "x"})} if method == "POST" else {}),
    )
    assert error.code == 403


async def test_a_cookie_post_without_xsrf_is_refused(jp_fetch: Any, project: Path) -> None:
    response = await jp_fetch("jupyter-mlops", "api", "models", params={"path": NOTEBOOK})
    cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")]
    login = next(c for c in cookies if c.startswith("username-"))
    body = {"alias": "champion", "require": ["metrics.val_acc >= 0.9"]}
    error = await refused(
        jp_fetch,
        "models/churn/promote",
        method="POST",
        body=json.dumps(body),
        headers={"Authorization": "", "Cookie": login},
    )
    assert error.code == 403
    assert "_xsrf" in error.response.body.decode()
    assert (await get(jp_fetch, "models/churn"))["aliases"] == {"champion": 1}


async def test_lineage_walks_from_a_model_version_to_its_data(jp_fetch: Any, project: Path) -> None:
    graph = await get(jp_fetch, "lineage", ref="churn/1")
    kinds = {node["kind"] for node in graph["nodes"]}
    labels = " ".join(node["label"] for node in graph["nodes"])
    assert {"snapshot", "run", "model"} <= kinds, kinds
    assert "customers@v1" in labels and "baseline" in labels
    assert graph["edges"]


@pytest.mark.parametrize(("ref", "code"), [("", 400), ("churn/x", 400)])
async def test_bad_lineage_refs_are_refused(
    jp_fetch: Any, project: Path, ref: str, code: int
) -> None:
    error = await refused(jp_fetch, "lineage", params={"path": NOTEBOOK, "ref": ref})
    assert error.code == code
    assert json.loads(error.response.body)["message"]


# --- hostile and damaged input: 4xx with a message, and one bad record never fails a list ---------

TWO_HUNDRED_CLAUSES = " and ".join(f"metrics.m{i} > 0" for i in range(200))
HUGE_OFFSET = base64.b64encode(json.dumps({"offset": 10**30}).encode()).decode()
DEEP_REQUIRE = "(" * 1000 + "metrics.val_acc > 0" + ")" * 1000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": TWO_HUNDRED_CLAUSES}, "filter has 200 clauses; combine at most 50"),
        ({"filter": "metrics.a > 0 and " * 600 + "metrics.a > 0"}, "keep it under 10,000"),
        ({"page_token": "x" * 5000}, "pass the next_page_token of the previous page"),
        ({"page_token": HUGE_OFFSET}, "pass the next_page_token of the previous page"),
    ],
    ids=["200-clauses", "long-filter", "huge-token", "huge-offset"],
)
async def test_hostile_run_queries_are_400(
    jp_fetch: Any, project: Path, params: dict[str, str], message: str
) -> None:
    error = await refused(jp_fetch, "runs", params={"path": NOTEBOOK, **params})
    assert error.code == 400
    assert message in json.loads(error.response.body)["message"]


async def test_a_require_nested_a_thousand_deep_is_400(jp_fetch: Any, project: Path) -> None:
    body = {"alias": "champion", "require": [DEEP_REQUIRE]}
    error = await refused(jp_fetch, "models/churn/promote", method="POST", body=json.dumps(body))
    assert error.code == 400
    message = json.loads(error.response.body)["message"]
    assert "nested more than 32 levels deep" in message and len(message) < 1000


@pytest.mark.parametrize(
    ("route", "params", "method", "body"),
    [
        ("lineage", {"ref": "ghost"}, "GET", None),
        ("lineage", {"ref": "churn/99"}, "GET", None),
        ("lineage", {"ref": "churn@nobody"}, "GET", None),
        (
            "models/churn/promote",
            {},
            "POST",
            {"alias": "staging", "version": 99, "require": ["metrics.val_acc > 0"]},
        ),
    ],
    ids=["lineage-unknown-name", "lineage-unknown-version", "lineage-unknown-alias", "promote"],
)
async def test_unknown_refs_are_404(
    jp_fetch: Any, project: Path, route: str, params: dict[str, str], method: str, body: Any
) -> None:
    extra = {"body": json.dumps(body)} if body is not None else {}
    error = await refused(
        jp_fetch, route, method=method, params={"path": NOTEBOOK, **params}, **extra
    )
    assert error.code == 404
    assert json.loads(error.response.body)["message"]


async def test_a_model_named_with_a_quote_by_plain_mlflow_is_listed_and_shown(
    jp_fetch: Any, project: Path
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / '.mlops' / 'mlflow.db'}"
    plain = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in ("o'brien model", 'say "hi"'):
        plain.create_registered_model(name)
        plain.create_model_version(name, source=(project / ".mlops").as_uri())
    listing = {m["name"]: m for m in (await get(jp_fetch, "models"))["models"]}
    assert listing["o'brien model"]["versions"] == 1 and listing["o'brien model"]["error"] is None
    assert listing['say "hi"']["latest_version"] == 1
    assert listing["churn"]["versions"] == 2
    detail = await get(jp_fetch, "models/o'brien model")  # jp_fetch quotes each part
    assert [v["version"] for v in detail["versions"]] == [1]


async def test_a_truncated_drift_summary_is_a_row_with_its_error(
    jp_fetch: Any, project: Path
) -> None:
    from mlflow.tracking import MlflowClient

    (summary,) = project.parent.parent.rglob("drift/*.json")  # the module's drift-check report
    intact = summary.read_text()
    uri = f"sqlite:///{project / '.mlops' / 'mlflow.db'}"
    plain = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = plain.create_experiment(
        "damaged", artifact_location=(project / ".mlops" / "damaged").as_uri()
    )
    run = plain.create_run(experiment, tags={"mlops.drift.reference": "customers@v1"})
    plain.log_text(run.info.run_id, intact, "drift/good.json")
    plain.log_text(run.info.run_id, intact[: len(intact) // 2], "drift/cut.json")
    plain.set_terminated(run.info.run_id)
    listing = await get(jp_fetch, "drift", experiment="damaged")
    reports = {r["report"]: r for r in listing["reports"]}
    assert reports["cut"]["error"].startswith("drift/cut.json is damaged")
    assert "run %drift again" in reports["cut"]["error"] and reports["cut"]["drifted"] is None
    assert reports["good"]["error"] is None
    assert reports["good"]["share_drifted"] == pytest.approx(1 / 3)


async def test_cached_answers_follow_every_change_to_the_store(
    jp_fetch: Any, project: Path
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / '.mlops' / 'mlflow.db'}"
    plain = MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = await get(jp_fetch, "runs")
    assert await get(jp_fetch, "runs") == first  # answered again from the cache
    experiment = plain.get_experiment_by_name("train").experiment_id
    run = plain.create_run(experiment, run_name="written-meanwhile")
    assert (await get(jp_fetch, "runs"))["runs"][0]["name"] == "written-meanwhile"
    plain.log_metric(run.info.run_id, "val_acc", 0.99)
    assert (await get(jp_fetch, "runs"))["runs"][0]["metrics"] == {"val_acc": 0.99}
    plain.create_registered_model("fresh")
    assert "fresh" in {m["name"] for m in (await get(jp_fetch, "models"))["models"]}
