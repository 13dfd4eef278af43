"""The melange-nb command: melange-release compatibility, project files, and one-line errors."""
import json
import subprocess
import sys

import pytest

from melange_nb.config import GPUS_DIR, WORKLOADS_DIR

GPUS = str(GPUS_DIR / "llama2-7b-seed.yaml")
ARENA = str(WORKLOADS_DIR / "arena-seed.csv")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "melange_nb.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_melange_format_matches_melange_release_exactly(shared_data):
    out = cli("solve", "-c", shared_data / "melange_release_example.json", "--solver", "melange", "--format", "melange")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"A10G": 3, "A100-80GB": 1, "cost": 6.7}'


def test_config_slice_factor_and_exact_override(shared_data):
    cfg = shared_data / "melange_release_example.json"
    assert json.loads(cli("solve", "-c", cfg, "--slice-factor", "4", "--solver", "melange", "--format", "melange").stdout) == \
        {"A10G": 2, "A100-80GB": 1, "cost": 5.69}
    doc = json.loads(cli("solve", "-c", cfg, "--solver", "exact").stdout)
    assert doc["solver"] == "exact" and doc["status"] == "optimal" and doc["cost"] == 4.68
    assert doc["policies"]["single:A10G"]["counts"] == {"A10G": 12, "A100-80GB": 0}
    assert doc["policies"]["single:A100-80GB"]["counts"] == {"A10G": 0, "A100-80GB": 2}


def test_config_accepts_the_readme_list_form(tmp_path):
    cfg = tmp_path / "list.json"
    cfg.write_text(json.dumps({"gpu_info": [{"name": "A10G", "cost": 1.01, "tputs": [[2, 1], [5, 2]]},
                                            {"name": "A100-80GB", "cost": 3.67, "tputs": [[20, 20], [40, 20]]}],
                               "workload_distribution": [[0.2, 0.1], [0.5, 0.2]], "total_request_rate": 30.0}))
    out = cli("solve", "-c", cfg, "--solver", "melange", "--format", "melange")
    assert json.loads(out.stdout) == {"A10G": 3, "A100-80GB": 1, "cost": 6.7}


def test_project_files_and_output_file(tmp_path):
    target = tmp_path / "res" / "plan.json"
    out = cli("solve", "--workload", ARENA, "--gpus", GPUS, "--rate", 4, "-o", target)
    assert out.returncode == 0, out.stderr
    doc = json.loads(target.read_text())
    assert doc == json.loads(out.stdout)
    assert doc["allocation"] == {"A10G": 1, "A100": 1} and doc["cost"] == 4.68
    rows = {r["policy"]: r for r in doc["savings"]}
    assert rows["single:A100"]["cost_per_hour"] == 7.34 and rows["single:A10G"]["cost_per_hour"] == 5.05


def test_one_default_solver_exact_with_the_melange_ilp_as_comparison(shared_data):
    """`solve` defaults to the exact solver and shows the Mélange ILP beside it; --solver melange reproduces the paper."""
    cfg = shared_data / "melange_release_example.json"
    doc = json.loads(cli("solve", "-c", cfg).stdout)
    assert doc["solver"] == "exact" and doc["allocation"] == {"A10G": 1, "A100-80GB": 1} and doc["cost"] == 4.68
    assert doc["policies"]["melange"]["counts"] == {"A10G": 3, "A100-80GB": 1} and doc["policies"]["melange"]["cost"] == 6.7
    text = cli("solve", "-c", cfg, "--format", "text").stdout.strip()
    assert text.startswith("At 30 req/s: 1×A10G + 1×A100-80GB = $4.68/h")
    assert text.endswith("The Mélange ILP (slice factor 1) needs 3×A10G + 1×A100-80GB = $6.70/h, 43.2% more."), text
    text = cli("solve", "-c", cfg, "--solver", "melange", "--format", "text").stdout.strip()
    assert text.startswith("At 30 req/s: 3×A10G + 1×A100-80GB = $6.70/h")
    assert text.endswith("The exact mix needs 1×A10G + 1×A100-80GB = $4.68/h, 30.1% less."), text


def test_solve_says_what_share_of_requests_the_workload_dropped(tmp_path):
    """The one-line answer and the JSON state the dropped share from the workload's sidecar."""
    trace = _write(tmp_path, "t.csv", "ContextTokens,GeneratedTokens\n" + "30,30\n" * 5 + "300,30\n" + "5000,10\n" * 2)
    built = cli("workload", "--trace", trace, "-o", tmp_path / "w.csv")
    assert built.returncode == 0, built.stderr
    args = ("solve", "--workload", tmp_path / "w.csv", "--gpus", GPUS, "--rate", 2)
    doc = json.loads(cli(*args).stdout)
    assert doc["workload"]["requests"] == 8 and doc["workload"]["dropped"] == 2
    assert doc["workload"]["dropped_share"] == 0.25
    text = cli(*args, "--format", "text").stdout
    assert "(workload: 25.0% of 8 requests dropped (input >= 2000 or output >= 2000 tokens))" in text
    assert json.loads(cli("solve", "--workload", ARENA, "--gpus", GPUS, "--rate", 2).stdout)["workload"]["dropped_share"] is None


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_PROFILE = """input_edges: [0, 25, 100]
output_edges: [0, 25, 100]
gpus:
  A: {cost: 1.0, tputs: [[1, 2], [3, %s]]}
"""


@pytest.mark.parametrize("case, args, message", [
    ("shape", lambda t: ["--workload", ARENA, "--gpus", _write(t, "g.yaml", BAD_PROFILE % "4"), "--rate", 1],
     "buckets differ: the workload has input 0-25 to 1000-2000 tokens, 6 buckets"),
    ("edges", lambda t: ["--workload", ARENA, "--gpus", _write(t, "g.yaml", BAD_PROFILE % "4"), "--rate", 1],
     "build the workload on its edges: melange-nb workload ... --edges 0,25,100 --output-edges 0,25,100"),
    ("negative", lambda t: ["--workload", ARENA, "--gpus", _write(t, "g.yaml", BAD_PROFILE % "-4"), "--rate", 1],
     "A.tputs: has negative throughputs"),
    ("nan", lambda t: ["--workload", ARENA, "--gpus", _write(t, "g.yaml", BAD_PROFILE % ".nan"), "--rate", 1],
     "A.tputs[1][1]: must be a finite number (max requests/s (0 = cannot serve)), got nan"),
    ("rate", lambda t: ["--workload", ARENA, "--gpus", GPUS, "--rate", 0], "rate: must be a positive"),
    ("shares", lambda t: ["--workload", _write(t, "w.csv", "input_tokens,0-25\n0-25,0.7\n"), "--gpus", GPUS,
                          "--rate", 1], "shares sum to 0.7"),
    ("gpu", lambda t: ["--workload", ARENA, "--gpus", GPUS, "--rate", 1, "--gpu", "H100"], "unknown GPU name"),
    ("yaml", lambda t: ["--workload", ARENA, "--gpus", _write(t, "g.yaml", "gpus: [unclosed\n"), "--rate", 1],
     "is not valid YAML"),
    ("json", lambda t: ["-c", _write(t, "c.json", '{"gpu_info": {')], "is not valid JSON (line 1"),
    ("missing", lambda t: ["-c", _write(t, "c.json", '{"gpu_info": {}}')], "workload_distribution: is missing"),
    ("cost", lambda t: ["-c", _write(t, "c.json", json.dumps({"gpu_info": {"A": {"cost": -1, "tputs": [[1]]}},
                        "workload_distribution": [[1.0]], "total_request_rate": 1}))], "A.cost: must be a positive"),
    ("quota", lambda t: ["--workload", ARENA, "--gpus", GPUS, "--rate", 1, "--max-instances", "A10G"],
     "--max-instances: expects NAME=COUNT"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case, args, message):
    target = tmp_path / "out" / "plan.json"
    out = cli("solve", *args(tmp_path), "-o", target)
    assert out.returncode == 2, (case, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("melange-nb: error: ") and message in lines[0], lines
    assert out.stdout == "" and not target.parent.exists()


def test_an_error_does_not_import_the_sweep_package():
    """main()'s error handler recognises SweepInterrupted (exit 130) from melange_nb.errors, so a bad
    `solve` pays for no sweep import; melange_nb.sweep re-exports the same class."""
    code = ("import sys; from melange_nb.cli import main; "
            f"code = main(['solve', '--workload', {ARENA!r}, '--gpus', {GPUS!r}, '--rate', '0']); "
            "print(code, 'melange_nb.sweep' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["2", "False"], out.stderr
    from melange_nb import errors, sweep

    assert sweep.SweepInterrupted is errors.SweepInterrupted and issubclass(errors.SweepInterrupted, errors.MelangeError)


def test_non_integer_slice_factor_is_rejected(shared_data, tmp_path):
    out = cli("solve", "-c", shared_data / "melange_release_example.json", "--slice-factor", "2.5")
    assert out.returncode == 2 and "--slice-factor" in out.stderr  # argparse: invalid int value
    cfg = json.loads((shared_data / "melange_release_example.json").read_text()) | {"slice_factor": 1.5}
    out = cli("solve", "-c", _write(tmp_path, "c.json", json.dumps(cfg)))
    assert out.returncode == 2 and "slice_factor: must be a whole number >= 1, got 1.5" in out.stderr


def test_infeasible_plan_exits_1_with_status(tmp_path):
    profile = _write(tmp_path, "g.yaml", BAD_PROFILE % "0")
    workload = _write(tmp_path, "w.csv", "input_tokens,0-25,25-100\n0-25,0.5,0\n25-100,0,0.5\n")
    out = cli("solve", "--workload", workload, "--gpus", profile, "--rate", 1)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["status"] == "infeasible" and "input 25-100 x output 25-100" in doc["message"]
