"""`melange-nb schema KIND` prints a JSON Schema that the project's own files satisfy and bad files
do not; the pydantic models behind it give the loaders' one-line messages."""
import json

import pytest
import yaml
from jsonschema import Draft202012Validator

from melange_nb.cli import main
from melange_nb.config import PROJECT_ROOT
from melange_nb.errors import InputError
from melange_nb.profiles import load_gpus, load_prices
from melange_nb.run import load_params
from melange_nb.sweep import load_spec

FILES = {"gpus": sorted((PROJECT_ROOT / "params" / "gpus").glob("*.yaml")),
         "prices": sorted((PROJECT_ROOT / "params" / "prices").glob("*.yaml")),
         "run": sorted((PROJECT_ROOT / "params").glob("*.yaml")),
         "sweep": sorted((PROJECT_ROOT / "params" / "sweeps").glob("*.yaml"))}


def schema(kind, capsys):
    assert main(["schema", kind]) == 0
    return Draft202012Validator(json.loads(capsys.readouterr().out))


def as_json(path):
    """A YAML file as an editor's YAML 1.2 language server sees it (dates are text)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@pytest.mark.parametrize("kind", FILES)
def test_project_files_satisfy_their_printed_schema(kind, capsys):
    validator = schema(kind, capsys)
    assert FILES[kind]
    for path in FILES[kind]:
        errors = [e.message for e in validator.iter_errors(as_json(path))]
        assert errors == [], (path.name, errors)


BAD = {"gpus": [({"input_edges": [0, 25], "output_edges": [0, 25], "gpus": {"A": {"cost": "cheap", "tputs": [[1]]}}},
                 "gpus.A.cost: must be a positive number"),
                ({"input_edges": [0, 25], "output_edges": [0, 25], "gpus": {"A": {"cost": 1, "tputs": [[1]],
                                                                                  "gpus_per_replica": 0}}},
                 "gpus.A.gpus_per_replica: must be a whole number >= 1"),
                ({"input_edges": [0, 25], "output_edges": [0, 25], "gpus": {"A": {"tputs": [[1]]}}},
                 "gpus.A.cost: is missing")],
       "prices": [({"date": "2026-11-25", "gpus": {"A": {"usd_per_hour": -1}}},
                   "gpus.A.usd_per_hour: must be a positive number"),
                  ({"date": "2026-11-25", "gpus": {"A": {"usd_per_hour": 1, "systems": "h100_sxm"}}},
                   "gpus.A.systems: must be a list of system names")],
       "sweep": [({"rates": [1, 2], "workloads": {"w": "w.csv"}, "gpus": {"g": "g.yaml"}, "slice_factors": [0]},
                  "slice_factors: must be whole numbers >= 1"),
                 ({"rates": {"start": 1, "stop": 4, "step": 1}, "workloads": {"w": "w.csv", "m": {"blend": {"w": -1}}},
                   "gpus": {"g": "g.yaml"}}, "workloads.m.blend.w: must be a weight >= 0"),
                 ({"rates": [1, 2], "workloads": {"w": "w.csv"}, "gpus": {"g": "g.yaml"}, "render": "sometimes"},
                  "render: must be changes, all, none or comma-separated rates")],
       "run": [({"workload": "w.csv", "gpus": "g.yaml", "rate": 4, "solver": "cplex"}, "solver: must be melange, exact"),
               ({"workload": "w.csv", "gpus": "g.yaml", "rate": 4, "rates": [1]}, "rates: is not a parameter")]}
LOADERS = {"gpus": load_gpus, "prices": load_prices, "run": load_params, "sweep": load_spec}


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_fail_the_schema_and_the_loader_alike(kind, capsys, tmp_path):
    validator = schema(kind, capsys)
    for i, (doc, message) in enumerate(BAD[kind]):
        assert list(validator.iter_errors(doc)), doc
        path = tmp_path / f"f{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(InputError, match=f"^f{i}.yaml: " + message.replace("[", r"\[")):
            LOADERS[kind](path)


def test_provenance_round_trips_through_the_model():
    gpus = load_gpus(PROJECT_ROOT / "params" / "gpus" / "llama3.1-8b-tpot40.yaml")
    meta = next(iter(gpus.values())).meta
    assert meta["source"] == "predicted" and meta["slo"] == [{"metric": "tpot", "stat": "mean", "ms": 40.0}]
    assert meta["tool"]["name"] == "aiconfigurator-core" and meta["file"].endswith("llama3.1-8b-tpot40.yaml")
