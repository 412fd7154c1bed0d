"""Chart values `database` and `ingress`: the PostgreSQL URL reaches every Ray container from a
Secret (never the serve config), the ingress bounds reach the app and Serve, and more than one
ingress replica on the SQLite ledger is refused by the chart and by `orchestrator render`."""

from __future__ import annotations

import json

import pytest
import yaml
from helm_checks import by_kind, one, validate_all
from pydantic import ValidationError
from ray.serve.config import AutoscalingConfig

from orchestrator.deploy import load_inputs, render_rayservice
from orchestrator.deploy.values import ChartValues
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY
from orchestrator.serving.storage_target import DATABASE_URL_ENV

URL = "postgresql://orch:s3cr3t-pw@db.example:5432/orchestrator"


def _containers(rs: dict) -> list[dict]:
    cluster = rs["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _app_args(rs: dict) -> dict:
    (app,) = yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"]
    return app["args"]


def _db_env(container: dict) -> dict:
    (env,) = [e for e in container["env"] if e["name"] == DATABASE_URL_ENV]
    return env


def test_existing_secret_feeds_every_container_and_the_serve_config_has_no_ledger(render):
    values = {"database": {"existingSecret": "pg-creds", "existingSecretKey": "dsn"}}
    objs = render(values)
    validate_all(objs)
    rs = one(objs, "RayService")
    for container in _containers(rs):
        assert _db_env(container)["valueFrom"] == {
            "secretKeyRef": {"name": "pg-creds", "key": "dsn"}
        }
    assert "ledger" not in _app_args(rs)  # the replicas read the URL from the env var
    assert by_kind(objs, "Secret") == []  # the user's Secret, not one of ours


def test_url_is_kept_in_a_chart_secret_and_only_there(render):
    objs = render({"database": {"url": URL}})
    validate_all(objs)
    secret = one(objs, "Secret")
    assert secret["metadata"]["name"] == "orchestrator-database"
    assert secret["stringData"] == {"url": URL}
    rs = one(objs, "RayService")
    assert "s3cr3t-pw" not in json.dumps(rs)
    for container in _containers(rs):
        ref = _db_env(container)["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "orchestrator-database", "key": "url"}


def test_no_database_keeps_the_sqlite_ledger_and_no_env(render):
    rs = one(render(), "RayService")
    assert _app_args(rs)["ledger"] == "/var/lib/orchestrator/ledger.sqlite"
    assert all(e["name"] != DATABASE_URL_ENV for c in _containers(rs) for e in c["env"])


def test_ingress_bounds_reach_the_app_and_serve(render):
    values = {
        "database": {"existingSecret": "pg-creds"},
        "ingress": {"minReplicas": 2, "maxReplicas": 5, "targetOngoingRequests": 40},
    }
    args = _app_args(one(render(values), "RayService"))
    from orchestrator.control.serve_policy import ingress_autoscaling_config
    from orchestrator.serving.app import AppArgs

    scaling = AppArgs.model_validate(args).ingress_scaling()
    cfg = AutoscalingConfig.model_validate(ingress_autoscaling_config("c", "p", scaling))
    assert (cfg.min_replicas, cfg.max_replicas, cfg.target_ongoing_requests) == (2, 5, 40)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ingress": {"maxReplicas": 2}}, "needs a shared ledger"),
        (
            {"database": {"url": URL}, "ingress": {"minReplicas": 3, "maxReplicas": 2}},
            "minReplicas exceeds",
        ),
    ],
)
def test_refused_by_the_chart_and_by_render(helm, render, values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)
    with pytest.raises(ValidationError, match=message):
        ChartValues.model_validate(values)


def test_chart_and_render_agree_with_a_database(render, tmp_path):
    values = {
        "database": {"url": URL},
        "ingress": {"minReplicas": 1, "maxReplicas": 4},
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    chart = one(render(values, release="prod", namespace="team-a"), "RayService")
    ours = render_rayservice(
        load_inputs(DEFAULT_DEPLOYMENTS, DEFAULT_POLICY, path), release="prod", namespace="team-a"
    )
    for obj in (chart, ours):
        obj["spec"]["serveConfigV2"] = yaml.safe_load(obj["spec"]["serveConfigV2"])
        obj["metadata"]["labels"] = {
            k: v for k, v in obj["metadata"]["labels"].items() if not k.startswith("helm.sh")
        }
        obj["metadata"]["labels"].pop("app.kubernetes.io/managed-by", None)
    assert chart == ours
    ref = _db_env(_containers(ours)[0])["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "prod-orchestrator-database", "key": "url"}
