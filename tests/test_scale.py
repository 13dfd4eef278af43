"""Ray as the scale-out engine (melange_nb/scale.py): counts that give the default engine's histogram,
one-line errors before any cluster starts, and (slow) a real two-node cluster on loopback only."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings, strategies as st

from melange_nb.workload import bucket_index, histogram, histogram_from_counts

from ray_cluster import ADDRESS, NamespacedCluster, skip_reason, without_timings


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "melange_nb.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def _counts(requests, edges, out_edges, overflow):
    """What the Ray workers send: requests per bucket and per kept length, and the totals."""
    x, y = requests["input_tokens"].to_numpy(float), requests["output_tokens"].to_numpy(float)
    i, j, keep, above, below = bucket_index(x, y, edges, out_edges, overflow)
    shape = (len(edges) - 1 + (overflow == "open"), len(out_edges) - 1 + (overflow == "open"))
    cells = np.zeros(shape, dtype=np.int64)
    np.add.at(cells, (i[keep], j[keep]), 1)
    kept = pd.DataFrame({"input_tokens": pd.Series(x[keep].astype(int)).value_counts(),
                         "output_tokens": pd.Series(y[keep].astype(int)).value_counts()}).fillna(0).astype(int)
    kept.index.name = "tokens"
    return cells, kept, dict(requests=len(x), above=int(above.sum()), below=int(below.sum()))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)), min_size=1, max_size=300),
       st.sampled_from(["drop", "clip", "open"]))
@example(pairs=[(1, 1), (0, 0)], overflow="drop")   # lengths counted in descending order (found by hypothesis)
def test_histogram_from_counts_equals_histogram(pairs, overflow):
    requests = pd.DataFrame(pairs, columns=["input_tokens", "output_tokens"])
    edges, out_edges = [0, 25, 100, 250, 500, 1000, 2000], [0, 50, 500, 2000]
    try:
        want_w, want_r = histogram(requests, input_edges=edges, output_edges=out_edges, overflow=overflow)
    except Exception as exc:    # every request outside the edges: both must say so
        with pytest.raises(type(exc), match="outside the edges"):
            histogram_from_counts(*_counts(requests, edges, out_edges, overflow)[:2],
                                  **_counts(requests, edges, out_edges, overflow)[2],
                                  input_edges=edges, output_edges=out_edges, overflow=overflow)
        return
    cells, kept, totals = _counts(requests, edges, out_edges, overflow)
    got_w, got_r = histogram_from_counts(cells, kept, **totals, input_edges=edges, output_edges=out_edges,
                                         overflow=overflow)
    pd.testing.assert_frame_equal(got_w, want_w, check_exact=True)
    assert json.dumps(got_r, sort_keys=True) == json.dumps(want_r, sort_keys=True)   # percentiles bit for bit


def test_missing_ray_names_the_extra(monkeypatch):
    from melange_nb.errors import InputError
    from melange_nb.scale import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)      # as if Ray were not installed
    with pytest.raises(InputError, match=r"pip install 'melange-nb\[scale\]'"):
        require_ray()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "synthetic:50", "--engine", "ray", "--max-conversations", "10", "--seed", "1"], "--seed"),
    (["--trace", "t.csv", "--engine", "ray"], "a --trace already holds token counts"),
    (["--dataset", "synthetic:50", "--ray-address", "127.0.0.1:6379"], "applies to --engine ray only"),
    (["--dataset", "chats.csv", "--engine", "ray"], "reads Parquet or JSONL"),
    (["--dataset", "synthetic:50", "--engine", "ray", "--ray-address", "127.0.0.1:1"], "nothing answers at 127.0.0.1:1"),
    (["--dataset", "synthetic:50", "--engine", "ray", "--ray-address", "no-port"], "HOST:PORT"),
    (["--dataset", "synthetic:50", "--engine", "ray", "--edges", "0,100,50"], "edges"),
])
def test_bad_ray_options_fail_in_one_line_before_any_cluster(tmp_path, args, message):
    (tmp_path / "chats.csv").write_text('conversation\n"[]"\n')
    env = {**os.environ, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs"), "RAY_ADDRESS": ""}
    args = [str(tmp_path / a) if a in ("chats.csv", "t.csv") else a for a in args]
    result = _cli("workload", *args, "-o", tmp_path / "w.csv", env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "w.csv").exists()


SEED_WORKLOAD = "params/workloads/arena-seed.csv"
SEED_GPUS = "params/gpus/llama2-7b-seed.yaml"
HAND_LATENCY_GPUS = "params/gpus/llama2-7b-seed-hand-latency-tpot40.yaml"


@pytest.mark.parametrize("command, message", [
    (["solve", "--rate", "4"], "applies to --target-attainment's search only"),
    (["solve", "--rate", "4", "--target-attainment", "0.99", "--ray-address", "no-port"], "HOST:PORT"),
    (["simulate", "--rate", "4", "--ray-address", "127.0.0.1:notaport"], "HOST:PORT"),
    (["plan", "--trace", "t.csv", "-o", "out", "--ray-address", ""], None),
])
def test_bad_ray_address_of_solve_simulate_plan_fails_in_one_line(tmp_path, command, message):
    from melange_nb.config import PROJECT_ROOT

    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,10,10\n")
    command = [str(tmp_path / a) if a in ("t.csv", "out") else a for a in command]
    if "--ray-address" not in command:
        command += ["--ray-address", "127.0.0.1:6379"]
    extra = [] if command[0] == "plan" else ["--workload", PROJECT_ROOT / SEED_WORKLOAD]
    result = _cli(*command, "--gpus", PROJECT_ROOT / HAND_LATENCY_GPUS, *extra,
                  env={**os.environ, "RAY_ADDRESS": ""})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--ray-address" in result.stderr and (message is None or message in result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- a real two-node cluster (slow)

@pytest.fixture(scope="module")
def cluster():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    c = NamespacedCluster(worker_nodes=1, cpus=1)
    yield c
    c.close()


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    """400 synthetic conversations as JSONL and as Parquet (with a language column to filter on)."""
    from melange_nb.synthetic import make_chats

    folder = tmp_path_factory.mktemp("chats")
    rows = make_chats(400, seed=3)
    for k, row in enumerate(rows):
        row["language"] = "English" if k % 3 else "German"
    (folder / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_parquet(folder / "chats.parquet")
    return folder


def _same_sidecar(a: dict, b: dict) -> None:
    """Equal but for the engine, the dataset fingerprint (each engine's own) and the cache state."""
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    for side in (a, b):
        side.pop("engine"), side.pop("cache"), side["dataset"].pop("fingerprint")
    assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("source, options", [
    ("chats.jsonl", []),
    ("chats.parquet", ["--max-conversations", "300", "--language", "English", "--turn-policy", "first",
                       "--special-tokens", "--overflow", "open", "--edges", "0,50,200,1000"]),
])
def test_two_node_workload_equals_the_default_engine(cluster, chats, tmp_path, source, options):
    env = {**cluster.env, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    local = _cli("workload", "--dataset", chats / source, *options, "-o", tmp_path / "local.csv", env=env)
    assert local.returncode == 0, local.stderr
    on_ray = cluster.run(sys.executable, "-m", "melange_nb.cli", "workload", "--dataset", chats / source, *options,
                         "--engine", "ray", "--ray-address", ADDRESS, "-o", tmp_path / "ray.csv", env=env)
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "local.csv").read_text()
    local_meta = json.loads((tmp_path / "local.json").read_text())
    ray_meta = json.loads((tmp_path / "ray.json").read_text())
    assert local_meta["engine"] == "datasets"
    assert ray_meta["engine"].startswith("ray (ray 2.") and "2 nodes, 2 CPUs" in ray_meta["engine"]
    _same_sidecar(local_meta, ray_meta)
    # The cache still applies: the same command again counts nothing on the cluster.
    again = cluster.run(sys.executable, "-m", "melange_nb.cli", "workload", "--dataset", chats / source, *options,
                        "--engine", "ray", "--ray-address", ADDRESS, "-o", tmp_path / "again.csv", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "again.json").read_text())["cache"] == "hit"
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "local.csv").read_text()


@pytest.mark.slow
def test_two_node_workload_reports_a_bad_row_in_one_line(cluster, tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"conversation": [{"role": "user", "content": 3}]}) + "\n")
    env = {**cluster.env, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    result = cluster.run(sys.executable, "-m", "melange_nb.cli", "workload", "--dataset", tmp_path / "bad.jsonl",
                         "--engine", "ray", "--ray-address", ADDRESS, "-o", tmp_path / "w.csv", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("melange-nb: error: dataset:"), result.stderr[-1500:]
    assert not (tmp_path / "w.csv").exists()


# ---------------------------------------------------------------- sweeps on the cluster (slow)



def _sweep_args(rates, out):
    from melange_nb.config import PROJECT_ROOT

    return ["sweep", "--workload", PROJECT_ROOT / SEED_WORKLOAD, "--gpus", PROJECT_ROOT / SEED_GPUS,
            "--rates", ",".join(map(str, rates)), "--solver", "exact", "--solver", "melange", "--render", "none",
            "-o", out]


def _results(out):
    table = pd.read_csv(out / "results.csv").drop(columns=["solve_seconds"])
    return table.sort_values(["point", "policy"]).reset_index(drop=True)


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())["points"]


@pytest.mark.slow
def test_two_node_sweep_equals_the_local_pool_and_survives_a_lost_node(cluster, tmp_path):
    """Points run as Ray tasks on both nodes; the worker node is killed mid-sweep: no finished point
    is lost (the manifest is recorded as points finish), and the sweep (or a re-run) completes with
    the local pool's results."""
    rates = [round(0.5 * k, 1) for k in range(1, 121)]
    env = {**cluster.env, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    local = _cli(*_sweep_args(rates, tmp_path / "local"), "-j", "2", env=env)
    assert local.returncode == 0, local.stderr[-1500:]
    out = tmp_path / "ray"
    sweep = cluster.popen(sys.executable, "-m", "melange_nb.cli", *_sweep_args(rates, out), "--ray-address", ADDRESS,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines, done_before = [], {}
    for line in sweep.stdout:
        lines.append(line)
        if "points solved" in line and (out / "manifest.json").is_file():
            done_before = {k: v for k, v in _manifest(out).items() if v["status"] == "done"}
            if done_before:
                cluster.kill_node(1)          # the worker node, while points are still running
                break
    lines += sweep.stdout.readlines()
    code = sweep.wait()
    log = "".join(lines)
    assert done_before, log[-1500:]
    assert "on ray 2." in log and "2 nodes" in log, log[-1500:]
    assert code in (0, 1), log[-1500:]
    after = _manifest(out)
    assert all(after[k]["status"] == "done" for k in done_before)      # nothing finished is lost
    failed = {k: v["error"] for k, v in after.items() if v["status"] == "failed"}
    assert all("\n" not in e for e in failed.values())                  # a lost task: one line per point
    rerun = cluster.run(sys.executable, "-m", "melange_nb.cli", *_sweep_args(rates, out), "--ray-address", ADDRESS,
                        "--retry-failed", env=env)
    assert rerun.returncode == 0, rerun.stdout[-1500:] + rerun.stderr[-1500:]
    assert all(v["status"] == "done" for v in _manifest(out).values())
    pd.testing.assert_frame_equal(_results(out), _results(tmp_path / "local"))


# ---------------------------------------------------------------- plans and simulations on the cluster (slow)


@pytest.mark.slow
def test_two_node_plan_and_simulate_equal_here(cluster, shared_data, tmp_path):
    """`plan --ray-address` (windows solved, and the trace replayed per GPU pool, as Ray tasks) and
    `simulate --ray-address --target-attainment` (every search step's plans as Ray tasks) give what
    the same commands give here."""
    from melange_nb.config import PROJECT_ROOT

    env = {**cluster.env, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    gpus = PROJECT_ROOT / HAND_LATENCY_GPUS
    plan = ["plan", "--trace", shared_data / "azure_llm_inference_conv_2023.csv", "--gpus", gpus, "--window", "5min",
            "--simulate"]
    here = _cli(*plan, "-o", tmp_path / "here", env=env)
    on_ray = cluster.run(sys.executable, "-m", "melange_nb.cli", *plan, "--ray-address", ADDRESS, "-o",
                         tmp_path / "ray", env=env)
    assert here.returncode == on_ray.returncode == 0, here.stderr[-1500:] + on_ray.stderr[-1500:]
    assert here.stdout.replace("here", "ray") == on_ray.stdout           # the same answer, word for word
    for name in ("plan.csv", "deploy.json", "simulation/summary.csv", "simulation/queue.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "here" / name).read_text(), name
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray/simulation/requests.parquet"),
                                  pd.read_parquet(tmp_path / "here/simulation/requests.parquet"))
    assert set(pd.read_parquet(tmp_path / "here/simulation/requests.parquet")["gpu"]) == {"A10G", "A100"}  # 2 pools

    search = ["simulate", "--gpus", gpus, "--workload", PROJECT_ROOT / SEED_WORKLOAD, "--rate", "8",
              "--target-attainment", "0.99", "--duration", "300", "--format", "json"]
    here = _cli(*search, env=env)
    on_ray = cluster.run(sys.executable, "-m", "melange_nb.cli", *search, "--ray-address", ADDRESS, env=env)
    assert here.returncode == on_ray.returncode == 0, here.stderr[-1500:] + on_ray.stderr[-1500:]
    found = json.loads(here.stdout)
    assert found["attainment"]["status"] == "met" and len(found["attainment"]["tried"]) > 3
    assert without_timings(json.loads(on_ray.stdout)) == without_timings(found)


@pytest.mark.slow
def test_two_node_simulate_reports_a_bad_address_and_a_missing_model_in_one_line(cluster, tmp_path):
    from melange_nb.config import PROJECT_ROOT

    env = {**cluster.env, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    args = ["simulate", "--workload", PROJECT_ROOT / SEED_WORKLOAD, "--rate", "4", "--duration", "60"]
    nobody = cluster.run(sys.executable, "-m", "melange_nb.cli", *args, "--gpus", PROJECT_ROOT / HAND_LATENCY_GPUS,
                         "--ray-address", "127.0.0.1:1", env=env)
    assert nobody.returncode == 2 and nobody.stderr.count("\n") == 1, nobody.stderr[-1500:]
    assert "nothing answers at 127.0.0.1:1" in nobody.stderr
    no_model = cluster.run(sys.executable, "-m", "melange_nb.cli", *args, "--gpus", PROJECT_ROOT / SEED_GPUS,
                           "--ray-address", ADDRESS, env=env)
    assert no_model.returncode == 2 and no_model.stderr.count("\n") == 1, no_model.stderr[-1500:]
    assert "has no latency model" in no_model.stderr


@pytest.mark.slow
def test_two_node_plan_target_attainment_equals_here(cluster, shared_data, tmp_path):
    """`plan --target-attainment --ray-address`: each window's attainment search a Ray task, the whole-trace
    replays per GPU pool on the cluster; the same plan found, files and words, as here."""
    from melange_nb.config import PROJECT_ROOT

    env = {**cluster.env, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    rows = pd.read_csv(shared_data / "azure_llm_inference_conv_2023.csv")
    trace = tmp_path / "three-minutes.csv"
    rows[pd.to_datetime(rows["TIMESTAMP"]) < pd.Timestamp("2023-11-16 18:18:00")].to_csv(trace, index=False)
    plan = ["plan", "--trace", trace, "--gpus", PROJECT_ROOT / HAND_LATENCY_GPUS, "--window", "1min",
            "--target-attainment", "0.99"]
    here = _cli(*plan, "-o", tmp_path / "here", env=env)
    on_ray = cluster.run(sys.executable, "-m", "melange_nb.cli", *plan, "--ray-address", ADDRESS, "-o",
                         tmp_path / "ray", env=env)
    assert here.returncode == on_ray.returncode == 0, here.stderr[-1500:] + on_ray.stderr[-1500:]
    assert here.stdout.replace("here", "ray") == on_ray.stdout
    for name in ("plan.csv", "deploy.json", "simulation/summary.csv"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "here" / name).read_text(), name
    table = pd.read_csv(tmp_path / "here" / "plan.csv")
    assert (table["target_status"] == "met").all() and (table["target_plans_tried"] > 1).all()


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A suite started in the background (`nohup make test &`)
    inherits SIGINT ignored, and Python would then never raise KeyboardInterrupt (DESIGN trap 16)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_plan_on_the_cluster_with_nothing_written(cluster, shared_data, tmp_path):
    """SIGINT while `plan --target-attainment --ray-address` searches its windows on the cluster: the
    Ray tasks are cancelled, the command says "interrupted" in one line (exit 130, no traceback) and
    the output folder is not left half-written."""
    import signal
    import time
    from pathlib import Path

    from melange_nb.config import PROJECT_ROOT

    out = tmp_path / "plan"
    run = cluster.popen(sys.executable, "-m", "melange_nb.cli", "plan", "--trace",
                        shared_data / "azure_llm_inference_conv_2023.csv", "--gpus",
                        PROJECT_ROOT / "params/gpus/llama3.1-8b-tpot40.yaml", "--target-attainment", "0.99",
                        "--window", "30s", "--ray-address", ADDRESS, "-o", out,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    time.sleep(15)                                  # connected, windows solved, searches running on the cluster
    assert run.poll() is None, run.stderr.read()[-1500:]
    children = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
    os.kill(int(children[0]) if children else run.pid, signal.SIGINT)    # the CLI's process inside nsenter
    _, err = run.communicate()
    assert run.returncode == 130, err[-1500:]
    assert err.strip().splitlines()[-1] == "melange-nb: interrupted" and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_an_address_that_is_not_a_ray_head_fails_in_one_line(monkeypatch):
    """Something listens there but does not speak gRPC (a web server, a silent socket): refused within
    seconds, where `ray.init` would retry for minutes; ports out of range and IPv6 brackets are understood."""
    import http.server
    import socket
    import threading

    from melange_nb.errors import MelangeError
    from melange_nb import scale

    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setattr(scale, "PROBE_TIMEOUT_S", 0.5)
    try:
        for port in (web.server_address[1], silent.getsockname()[1]):
            with pytest.raises(MelangeError, match="answers, but not as a Ray head"):
                scale.check_reachable(f"127.0.0.1:{port}")
    finally:
        web.shutdown()
        silent.close()
    with pytest.raises(MelangeError, match="port 1-65535"):
        scale.check_address("127.0.0.1:99999")
    with pytest.raises(MelangeError, match=r"nothing answers at \[::1\]:1 \((Connection refused|Cannot assign)"):
        scale.check_reachable("[::1]:1")
    assert len(str(pytest.raises(MelangeError, scale.check_address, "a" * 10_000).value)) < 200
