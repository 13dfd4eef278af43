"""Deployment exports: SkyServe service YAMLs (checked against SkyServe's documented fields) and deploy.json."""
import json
import subprocess
import sys

import jsonschema
import pandas as pd
import pytest
import yaml

from melange_nb.export import plan_deployment, result_deployment, service_file_name, skyserve_service, write_exports
from melange_nb.plan import plan_trace
from melange_nb.profiles import load_gpus
from melange_nb.solver import Constraints, solve
from melange_nb.workload import read_workload

# The fields a SkyServe service YAML may hold, from SkyPilot's documentation (task YAML with a
# `service` section: https://docs.skypilot.co/en/stable/serving/service-yaml-spec.html and
# .../serving/autoscaling.html) and, field for field, the `service` schema in SkyPilot 0.14.1's
# sky/utils/schemas.py (get_service_schema). `additionalProperties: False` as there: a misspelt
# key fails. The `skypilot` package itself is not a dependency (it pulls in a web server stack); these
# files were also loaded once by SkyPilot 0.14.1 itself (schema, SkyServiceSpec, sky.Task.from_yaml).
SERVICE = {
    "type": "object", "additionalProperties": False, "required": ["readiness_probe"],
    "properties": {
        "readiness_probe": {"anyOf": [{"type": "string"}, {
            "type": "object", "required": ["path"], "additionalProperties": False,
            "properties": {"path": {"type": "string", "pattern": "^/"}, "initial_delay_seconds": {"type": "number"},
                           "timeout_seconds": {"type": "number"}, "post_data": {"type": ["string", "object"]},
                           "headers": {"type": "object"}}}]},
        "replica_policy": {
            "type": "object", "required": ["min_replicas"], "additionalProperties": False,
            "properties": {"min_replicas": {"type": "integer", "minimum": 0},
                           "max_replicas": {"type": "integer", "minimum": 0},
                           "target_qps_per_replica": {"type": "number", "minimum": 0},
                           "num_overprovision": {"type": "integer", "minimum": 0},
                           "upscale_delay_seconds": {"type": "number"}, "downscale_delay_seconds": {"type": "number"}}},
        "replicas": {"type": "integer"}, "ports": {"type": "integer"},
        "load_balancing_policy": {"type": "string"}}}
TASK = {"type": "object", "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "workdir": {"type": "string"}, "num_nodes": {"type": "integer"},
                       "resources": {"type": "object", "properties": {
                           "accelerators": {"type": "string", "pattern": r"^[A-Za-z0-9-]+:\d+$"},
                           "ports": {"type": "integer"}}},
                       "envs": {"type": "object", "additionalProperties": {"type": "string"}},
                       "service": SERVICE, "setup": {"type": "string"}, "run": {"type": "string"},
                       "file_mounts": {"type": "object"}}}


def check_service(doc: dict) -> None:
    """Validate one service like SkyServe does: the schema, then its spec checks (service_spec.py)."""
    jsonschema.validate(doc, TASK)
    policy = doc["service"]["replica_policy"]
    assert policy["max_replicas"] >= policy["min_replicas"]           # SkyServe: max >= min
    assert policy["max_replicas"] == policy["min_replicas"] or "target_qps_per_replica" in policy  # autoscaling
                                                                         # needs a QPS target


def test_static_export_for_the_arena_mix(tmp_path, seed_gpus, arena_csv):
    result = solve(read_workload(arena_csv), seed_gpus, 4, solver="exact")
    assert result.counts == {"A10G": 1, "A100": 1}
    deploy = result_deployment(result, seed_gpus)
    paths = write_exports(deploy, tmp_path)
    assert sorted(p.name for p in paths) == ["deploy.json", "skyserve-a100.yaml", "skyserve-a10g.yaml"]
    routing = result.routing
    for gpu in ("A10G", "A100"):
        doc = yaml.safe_load((tmp_path / service_file_name(gpu)).read_text())
        check_service(doc)
        assert doc["resources"]["accelerators"] == f"{gpu}:1"
        assert doc["service"]["replica_policy"]["min_replicas"] == doc["service"]["replica_policy"]["max_replicas"] == 1
        # QPS one GPU sustains on its routed mix = routed rate / GPUs of load it adds, from the profile.
        rows = routing[routing["gpu"] == gpu]
        tput = seed_gpus[gpu].tputs
        load = sum(r.rate / tput.loc[r.input_tokens, r.output_tokens] for r in rows.itertuples())
        assert doc["service"]["replica_policy"]["target_qps_per_replica"] == pytest.approx(rows["rate"].sum() / load, abs=1e-4)
        shares = json.loads(doc["envs"]["MELANGE_ROUTING_SHARES"])
        assert shares and all(0 < s <= 1 for s in shares.values())
    saved = json.loads((tmp_path / "deploy.json").read_text())
    assert saved["kind"] == "static" and saved["cost_per_hour"] == 4.68
    for route in saved["routes"]:
        assert sum(route["shares"].values()) == pytest.approx(1.0)


def test_plan_export_bounds_and_schedule(tmp_path):
    profile = tmp_path / "toy.yaml"
    profile.write_text("input_edges: [0, 100, 1000]\noutput_edges: [0, 100, 1000]\ngpus:\n"
                       "  S: {cost: 1.0, tputs: [[10, 10], [1, 1]]}\n  L: {cost: 3.0, tputs: [[20, 20], [6, 6]]}\n")
    t0 = pd.Timestamp("2024-01-01 10:00:00")
    rows = [(t0 + pd.Timedelta(seconds=k / 10), 50, 50) for k in range(600)]
    rows += [(t0 + pd.Timedelta(seconds=60 + k / 12), 500, 50) for k in range(720)]   # 12 large req/s: 2 L
    trace = tmp_path / "t.csv"
    pd.DataFrame(rows, columns=["TIMESTAMP", "ContextTokens", "GeneratedTokens"]).to_csv(trace, index=False)
    plan = plan_trace(trace, load_gpus(profile), window="1min", constraints=Constraints(utilization_cap=0.5))
    assert list(plan.table["S"]) == [2, 0] and list(plan.table["L"]) == [0, 4]
    deploy = plan_deployment(plan)
    assert deploy["gpus"]["S"]["min_replicas"] == 0 and deploy["gpus"]["S"]["max_replicas"] == 2
    assert deploy["gpus"]["L"]["min_replicas"] == 0 and deploy["gpus"]["L"]["max_replicas"] == 4
    # At a 50% cap one S plans 5 small req/s and one L 3 large req/s.
    assert deploy["gpus"]["S"]["target_qps_per_replica"] == pytest.approx(5.0)
    assert deploy["gpus"]["L"]["target_qps_per_replica"] == pytest.approx(3.0)
    assert [w["replicas"] for w in deploy["schedule"]] == [{"S": 2, "L": 0}, {"S": 0, "L": 4}]
    assert deploy["schedule"][1]["routes"] == {"100-1000|0-100": {"L": 1.0}}
    for gpu in ("S", "L"):
        check_service(skyserve_service(deploy, gpu))
    json.dumps(deploy)   # plain JSON, no pandas objects


def test_documented_schema_rejects_what_skyserve_rejects():
    good = {"resources": {"accelerators": "A100:1", "ports": 8000},
            "service": {"readiness_probe": {"path": "/v1/models"},
                        "replica_policy": {"min_replicas": 1, "max_replicas": 3, "target_qps_per_replica": 2.5}}}
    check_service(good)
    for bad in ({**good, "routing": {}},
                {**good, "service": {**good["service"], "replica_policy": {"max_replicas": 3}}},
                {**good, "service": {**good["service"], "readiness_probe": {"path": "v1"}}}):
        with pytest.raises(jsonschema.ValidationError):
            check_service(bad)


def test_solve_export_cli(tmp_path, arena_csv):
    from melange_nb.config import GPUS_DIR

    out = subprocess.run([sys.executable, "-m", "melange_nb.cli", "solve", "--workload", arena_csv, "--gpus",
                          GPUS_DIR / "llama2-7b-seed.yaml", "--rate", "4", "--export", tmp_path / "deploy"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["allocation"] == {"A10G": 1, "A100": 1}
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == ["deploy.json", "skyserve-a100.yaml",
                                                                      "skyserve-a10g.yaml"]
    deploy = json.loads((tmp_path / "deploy" / "deploy.json").read_text())
    assert deploy["source"] == {"rate": 4.0, "workload": "arena-seed.csv"}
