"""The serving simulator: queueing theory (Lindley, Pollaczek-Khinchine), streams, routing, plans, bad input."""
import dataclasses
from pathlib import Path
import json
import math

import numpy as np
import pandas as pd
import pytest

from melange_nb import simulate as S
from melange_nb.config import GPUS_DIR
from melange_nb.errors import InputError
from melange_nb.profiles import GpuProfile, load_gpus, save_profiles
from melange_nb.profiles.latency import LatencyModel, parse_latency
from melange_nb.workload import read_workload

HAND = {"step_ms": {"base": 12.0, "per_seq": 0.4, "per_prefill_token": 0.02, "per_context_token": 0.0},
        "max_seqs": 256, "kv_tokens": 400000, "max_step_tokens": 8192, "source": "hand"}


def with_latency(gpus, latency=HAND):
    return {k: dataclasses.replace(v, latency=parse_latency(latency)) for k, v in gpus.items()}


def one_gpu(step_ms: float, *, max_seqs=1, kv=10**9, budget=10**6, per_seq=0.0, slo_ms=1e9, edges=("0-10", "10-1000")):
    """One GPU type with a constant step time (the single-server queue of the proofs)."""
    lat = LatencyModel(step_ms, per_seq, 0.0, 0.0, 0.0, max_seqs, kv, budget, "test")
    tputs = pd.DataFrame(1.0, index=pd.Index(list(edges), name="input_tokens"),
                         columns=pd.Index(list(edges), name="output_tokens"))
    meta = {"slo": [{"metric": "tpot", "stat": "mean", "ms": slo_ms}]}
    return {"G": GpuProfile("G", 1.0, tputs, meta, lat)}


def fixed_stream(arrivals, inputs, outputs, in_label="0-10", out_label="10-1000"):
    df = pd.DataFrame({"arrival_s": np.asarray(arrivals, float), "input_tokens": np.asarray(inputs, np.int64),
                       "output_tokens": np.asarray(outputs, np.int64), "input_bucket": in_label,
                       "output_bucket": out_label})
    df.attrs["duration_s"] = float(arrivals[-1])
    return df


def lindley(arrivals, services):
    """W(n+1) = max(0, W(n) + S(n) - A(n+1)), A = inter-arrival time; computed here, independently."""
    waits = [0.0]
    for k in range(1, len(arrivals)):
        waits.append(max(0.0, waits[-1] + services[k - 1] - (arrivals[k] - arrivals[k - 1])))
    return np.array(waits)


def test_waits_equal_lindleys_recursion():
    rng = np.random.default_rng(7)
    c = 0.010                                         # 10 ms per step, one sequence per batch
    n = 3000
    arrivals = np.cumsum(rng.exponential(0.5, n))
    outputs = rng.integers(1, 80, n)                  # a request of n tokens holds the replica n steps
    gpus = one_gpu(c * 1e3)
    plan = S.load_plan({"G": 1}, gpus, workload=pd.DataFrame([[0.0, 1.0], [0.0, 0.0]],
                                                             index=pd.Index(["0-10", "10-1000"], name="input_tokens"),
                                                             columns=pd.Index(["0-10", "10-1000"], name="output_tokens")))
    res = S.simulate(fixed_stream(arrivals, rng.integers(1, 10, n), outputs), plan, gpus)
    expected = lindley(arrivals, outputs * c)
    got = res.requests["queue_ms"].to_numpy() / 1e3
    assert (expected > 0.1).sum() > 100                # the queue really forms
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # TTFT = wait + one step (the prefill fits in one step and samples the first token); e2e = wait + n steps
    np.testing.assert_allclose(res.requests["ttft_ms"].to_numpy() / 1e3, expected + c, atol=1e-9)
    np.testing.assert_allclose(res.requests["e2e_ms"].to_numpy() / 1e3, expected + outputs * c, atol=1e-9)


def test_mean_wait_matches_pollaczek_khinchine():
    rng = np.random.default_rng(11)
    c, lam, n = 0.002, 8.0, 60_000
    outputs = rng.integers(1, 81, n)                  # S = n x c, n uniform 1..80: E[S] = 81 ms, rho = 0.648
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    gpus = one_gpu(c * 1e3)
    wl = pd.DataFrame([[0.0, 1.0], [0.0, 0.0]], index=pd.Index(["0-10", "10-1000"], name="input_tokens"),
                      columns=pd.Index(["0-10", "10-1000"], name="output_tokens"))
    res = S.simulate(fixed_stream(arrivals, np.ones(n), outputs), S.load_plan({"G": 1}, gpus, workload=wl), gpus)
    s = np.arange(1, 81) * c
    es, es2 = s.mean(), (s ** 2).mean()
    rho = lam * es
    pk = lam * es2 / (2 * (1 - rho))
    waits = res.requests["queue_ms"].to_numpy() / 1e3
    # batch means over 30 batches give the sampling error of the mean wait (waits are correlated)
    batches = waits[: n // 30 * 30].reshape(30, -1).mean(axis=1)
    se = batches.std(ddof=1) / math.sqrt(len(batches))
    assert abs(waits.mean() - pk) < 3 * se + 0.01 * pk, (waits.mean(), pk, se)


def test_continuous_batching_shares_steps_and_chunks_prefill():
    """Two requests in one batch step together (step time grows with the batch); a long prompt is
    prefilled in chunks of the step budget and its first token comes with the last chunk."""
    gpus = one_gpu(10.0, max_seqs=8, per_seq=1.0, budget=100)
    wl = pd.DataFrame([[0.5, 0.5], [0.0, 0.0]], index=pd.Index(["0-10", "10-1000"], name="input_tokens"),
                      columns=pd.Index(["0-10", "10-1000"], name="output_tokens"))
    plan = S.load_plan({"G": 1}, gpus, workload=wl)
    res = S.simulate(fixed_stream([0.0, 0.0], [5, 5], [3, 3]), plan, gpus)
    # both admitted in the first step (2 seqs: 12 ms), then 2 decode steps of 12 ms
    np.testing.assert_allclose(res.requests["ttft_ms"], [12.0, 12.0])
    np.testing.assert_allclose(res.requests["e2e_ms"], [36.0, 36.0])
    res = S.simulate(fixed_stream([0.0], [250], [2]), plan, gpus)
    # 250 prompt tokens at 100 per step: 3 steps of 11 ms, the last one samples the first token
    assert res.requests["ttft_ms"].iloc[0] == pytest.approx(33.0)
    assert res.requests["e2e_ms"].iloc[0] == pytest.approx(44.0)


def test_kv_cache_limits_admission_and_rejects_what_never_fits():
    gpus = one_gpu(10.0, max_seqs=8, kv=100)
    wl = pd.DataFrame([[0.5, 0.5], [0.0, 0.0]], index=pd.Index(["0-10", "10-1000"], name="input_tokens"),
                      columns=pd.Index(["0-10", "10-1000"], name="output_tokens"))
    plan = S.load_plan({"G": 1}, gpus, workload=wl)
    res = S.simulate(fixed_stream([0.0, 0.0, 0.0], [30, 30, 200], [30, 30, 5]), plan, gpus)
    r = res.requests
    assert r["queue_ms"].iloc[0] == 0 and r["queue_ms"].iloc[1] == pytest.approx(300.0)   # 60 + 60 > 100 tokens
    assert bool(r["rejected"].iloc[2]) and not bool(r["slo_met"].iloc[2])
    assert res.summary.at["all", "rejected"] == 1


def test_generated_stream_is_seeded_and_sizes_stay_in_their_buckets(seed_gpus, arena_csv):
    wl = read_workload(arena_csv)
    a = S.stream_from_workload(wl, 5, 200, seed=3)
    b = S.stream_from_workload(wl, 5, 200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(S.stream_from_workload(wl, 5, 200, seed=4))
    assert a["arrival_s"].is_monotonic_increasing and a["arrival_s"].max() < 200
    assert abs(len(a) - 1000) < 5 * math.sqrt(1000)
    lo = a["input_bucket"].str.split("-").str[0].astype(float).clip(lower=1)
    hi = a["input_bucket"].str.split("-").str[1].astype(float)
    assert ((a["input_tokens"] >= lo) & (a["input_tokens"] < hi)).all()
    big = S.stream_from_workload(wl, 5, 2000, seed=3)
    shares = (big.groupby(["input_bucket", "output_bucket"]).size() / len(big)).reindex(wl.stack().index, fill_value=0)
    p = wl.stack()
    assert (abs(shares - p) <= 4 * np.sqrt(p * (1 - p) / len(big)) + 1e-9).all()
    bursty = S.stream_from_workload(wl, 5, 2000, arrival="gamma:3", seed=1)
    gaps = np.diff(bursty["arrival_s"])
    assert gaps.std() / gaps.mean() == pytest.approx(3, rel=0.15)
    mid = S.stream_from_workload(wl, 5, 50, sizes="midpoint", seed=1)
    assert set(mid.loc[mid["input_bucket"] == "25-100", "input_tokens"]) <= {62}


def test_assignment_follows_shares_is_deterministic_and_complete(seed_gpus, arena_csv):
    wl = read_workload(arena_csv)
    gpus = with_latency(seed_gpus)
    plan = S.load_plan("A10G=2,A100=1", gpus, workload=wl)      # balanced routing: it splits buckets
    stream = S.stream_from_workload(wl, 4, 3000, seed=5)
    a = S.assign_gpus(stream, plan, gpus, seed=9)
    pd.testing.assert_frame_equal(a, S.assign_gpus(stream, plan, gpus, seed=9))
    assert a["gpu"].notna().all() and set(a["gpu"]) <= set(plan.gpus) and (a["routed"] == "plan").all()
    routes = plan.routes.set_index(["input_tokens", "output_tokens", "gpu"])["share"]
    assert (routes.groupby(level=[0, 1]).size() > 1).sum() >= 1
    for (i, o, g), share in routes.items():
        sub = a[(a["input_bucket"] == i) & (a["output_bucket"] == o)]
        assert (sub["gpu"] == g).mean() == pytest.approx(share, abs=4 * math.sqrt(share * (1 - share) / len(sub)) + 1e-9)


def test_latency_section_round_trips_and_is_validated(tmp_path, seed_gpus):
    gpus = with_latency(seed_gpus)
    path = save_profiles(tmp_path / "p.yaml", gpus)
    assert "latency:" in path.read_text()
    back = load_gpus(path)
    assert {g: p.latency for g, p in back.items()} == {g: p.latency for g, p in gpus.items()}
    mixed = dict(gpus, A100=dataclasses.replace(gpus["A100"], latency=parse_latency({**HAND, "max_seqs": 64})))
    back = load_gpus(save_profiles(tmp_path / "q.yaml", mixed))
    assert back["A100"].latency.max_seqs == 64 and back["A10G"].latency.max_seqs == 256
    for bad, match in [({**HAND, "max_seqs": 0}, r"latency\.max_seqs: must be a whole number >= 1"),
                       ({**HAND, "step_ms": {"base": -1}}, r"latency\.step_ms\.base: must be a number of milliseconds"),
                       ({**HAND, "step_ms": {"base": 1, "per_token": 1}}, r"latency\.step_ms\.per_token: is not a step term"),
                       ({k: v for k, v in HAND.items() if k != "source"}, r"latency\.source: is missing"),
                       ({**HAND, "kv_tokens": True}, r"latency\.kv_tokens: must be a whole number"),
                       ({**HAND, "step_ms": {"base": 0}}, r"latency\.step_ms\.base: and per_seq are both 0")]:
        with pytest.raises(InputError, match=match):
            parse_latency(bad)


# ---------------------------------------------------------------- bad input (point 6)

def test_gpu_without_latency_model_is_one_line_naming_it(seed_gpus, arena_csv):
    wl = read_workload(arena_csv)
    gpus = dict(with_latency(seed_gpus), A100=seed_gpus["A100"])
    plan = S.load_plan({"A10G": 1, "A100": 1}, gpus, workload=wl)
    with pytest.raises(InputError, match=r"gpus\.A100\.latency: GPU type A100 in the plan has no latency model; "
                                         r"add a `latency:` section"):
        S.simulate(S.stream_from_workload(wl, 1, 10), plan, gpus, slo="tpot_ms=40")


def test_profile_without_slo_needs_one(seed_gpus, arena_csv):
    wl = read_workload(arena_csv)
    gpus = with_latency(seed_gpus)
    with pytest.raises(InputError, match=r"^slo: the profile file states no SLO; give one"):
        S.simulate(S.stream_from_workload(wl, 1, 10), S.load_plan({"A10G": 1}, gpus, workload=wl), gpus)


def test_duration_zero_and_bad_arrival_are_refused(arena_csv):
    wl = read_workload(arena_csv)
    with pytest.raises(InputError, match=r"^duration: must be a positive number of seconds"):
        S.stream_from_workload(wl, 1, 0)
    with pytest.raises(InputError, match=r"^arrival: must be poisson, gamma:CV"):
        S.stream_from_workload(wl, 1, 10, arrival="gamma:-1")
    with pytest.raises(InputError, match=r"^duration: rate x duration"):
        S.stream_from_workload(wl, 1e6, 1e6)


def test_trace_without_timestamps_is_refused(tmp_path, seed_gpus):
    path = tmp_path / "t.csv"
    path.write_text("ContextTokens,GeneratedTokens\n10,20\n30,40\n")
    with pytest.raises(InputError, match=r"t.csv: TIMESTAMP: no such column"):
        S.stream_from_trace(path, seed_gpus)


def test_unbounded_queue_is_said_at_once_without_simulating(seed_gpus, arena_csv):
    wl = read_workload(arena_csv)
    gpus = with_latency(seed_gpus)
    plan = S.load_plan({"A10G": 1}, gpus, workload=wl)
    res = S.simulate(S.stream_from_workload(wl, 400, 60, seed=1), plan, gpus, slo="tpot_ms=40")
    assert res.status == "unbounded"
    assert res.message.startswith("the queue grows without bound: the plan is under-provisioned (A10G is offered")
    assert "ttft_ms" not in res.requests   # refused up front: nothing was simulated
    assert res.attainment == 0.0


def test_result_is_picklable_and_written(tmp_path, seed_gpus, arena_csv):
    import pickle

    wl = read_workload(arena_csv)
    gpus = with_latency(seed_gpus)
    res = S.simulate(S.stream_from_workload(wl, 3, 120, seed=2), S.load_plan(None, gpus, workload=wl, rate=3), gpus,
                     slo="tpot_ms=40")
    back = pickle.loads(pickle.dumps(res))
    pd.testing.assert_frame_equal(back.summary, res.summary)
    paths = S.write_result(res, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["queue.csv", "requests.parquet", "summary.csv", "summary.json"]
    req = pd.read_parquet(tmp_path / "out" / "requests.parquet")
    for col in ("arrival_s", "input_tokens", "output_tokens", "gpu", "replica", "queue_ms", "ttft_ms", "tpot_ms",
                "e2e_ms", "slo_met"):
        assert col in req
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["status"] == "ok" and doc["summary"][-1]["gpu"] == "all"


# ---------------------------------------------------------------- the command line

HAND_LATENCY = GPUS_DIR / "llama2-7b-seed-hand-latency-tpot40.yaml"    # the committed hand-written latency models


def hand_profile(tmp_path, **change):
    """The committed seed profiles with hand-written latency models at mean TPOT <= 40 ms (the README's
    `--target-attainment` example); `change` replaces GPU types (saved to a copy in `tmp_path`)."""
    if not change:
        return HAND_LATENCY
    return save_profiles(tmp_path / "hand.yaml", {**load_gpus(HAND_LATENCY), **change})


def run_cli(capsys, *argv):
    from melange_nb.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_simulate_solved_counts_and_saved_plans_agree(tmp_path, arena_csv, capsys):
    prof = hand_profile(tmp_path)
    common = ["--gpus", prof, "--workload", arena_csv, "--rate", 4, "--duration", 300, "--format", "json"]
    code, out, _ = run_cli(capsys, "simulate", *common, "-o", tmp_path / "sim")
    assert code == 0
    solved = json.loads(out)
    assert solved["status"] == "ok" and solved["plan"].startswith("1×A10G + 1×A100")
    assert (tmp_path / "sim" / "requests.parquet").is_file()
    # the same plan saved by solve -o, and as deploy.json by --export, simulate identically
    code, _, _ = run_cli(capsys, "solve", "--gpus", prof, "--workload", arena_csv, "--rate", 4, "--solver", "exact",
                         "--format", "json", "-o", tmp_path / "alloc.json", "--export", tmp_path / "deploy")
    assert code == 0
    for saved in (tmp_path / "alloc.json", tmp_path / "deploy" / "deploy.json"):
        code, out, _ = run_cli(capsys, "simulate", *common, "--plan", saved)
        again = json.loads(out)
        assert code == 0 and again["summary"][-1]["attainment"] == pytest.approx(solved["summary"][-1]["attainment"], abs=1e-6)
    code, out, _ = run_cli(capsys, "simulate", *common, "--counts", "A10G=3,A100=2")
    assert json.loads(out)["summary"][-1]["attainment"] > solved["summary"][-1]["attainment"]


def test_cli_simulate_replays_a_trace_through_a_per_window_plan(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 1500
    t0 = pd.Timestamp("2024-01-01 10:00:00")
    stamps = t0 + pd.to_timedelta(np.sort(rng.uniform(0, 900, n)), unit="s")
    pd.DataFrame({"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"), "ContextTokens": rng.integers(10, 900, n),
                  "GeneratedTokens": rng.integers(5, 400, n)}).to_csv(tmp_path / "trace.csv", index=False)
    prof = hand_profile(tmp_path)
    code, _, _ = run_cli(capsys, "plan", "--trace", tmp_path / "trace.csv", "--gpus", prof, "--window", "5min",
                         "-o", tmp_path / "plan")
    assert code == 0
    code, out, _ = run_cli(capsys, "simulate", "--gpus", prof, "--trace", tmp_path / "trace.csv", "--plan",
                           tmp_path / "plan", "--format", "json", "-o", tmp_path / "sim")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "ok" and doc["options"]["requests"] == n and "per-window plan, 3 windows" in doc["plan"]
    req = pd.read_parquet(tmp_path / "sim" / "requests.parquet")
    assert sorted(req["window"].unique()) == [0, 1, 2]


@pytest.mark.parametrize("argv, match", [
    (["--duration", "0"], r"--duration: must be a positive number of seconds"),
    (["--arrival", "bursty"], r"--arrival: must be poisson, gamma:CV"),
    (["--counts", "H100=1"], r"plan: names GPU type\(s\) \['H100'\] that the profile file does not have"),
    (["--routing", "random"], r"invalid choice: 'random'"),
])
def test_cli_simulate_bad_input_is_one_line_exit_2_nothing_written(tmp_path, arena_csv, capsys, argv, match):
    prof = hand_profile(tmp_path)
    code, out, err = run_cli(capsys, "simulate", "--gpus", prof, "--workload", arena_csv, "--rate", 4, *argv,
                             "-o", tmp_path / "sim") if argv[0] != "--routing" else (None, None, None)
    if code is None:
        with pytest.raises(SystemExit) as exc:
            run_cli(capsys, "simulate", "--gpus", prof, "--workload", arena_csv, "--rate", 4, *argv)
        code, err = exc.value.code, capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and re_search(match, err), err
    assert not (tmp_path / "sim").exists()


def test_cli_simulate_without_latency_model_and_unbounded(tmp_path, seed_gpus, arena_csv, capsys):
    prof = hand_profile(tmp_path, A100=seed_gpus["A100"])
    code, _, err = run_cli(capsys, "simulate", "--gpus", prof, "--workload", arena_csv, "--rate", 4)
    assert code == 2 and "GPU type A100 in the plan has no latency model" in err and len(err.splitlines()) == 1
    prof = hand_profile(tmp_path)
    code, out, _ = run_cli(capsys, "simulate", "--gpus", prof, "--workload", arena_csv, "--rate", 200,
                           "--counts", "A10G=1", "--duration", 60, "--format", "text")
    assert code == 1 and out.startswith("the queue grows without bound: the plan is under-provisioned")


def test_cli_solve_target_attainment_reports_both_plans_and_minimal_neighbours(tmp_path, arena_csv, capsys):
    prof = hand_profile(tmp_path)
    code, out, _ = run_cli(capsys, "solve", "--gpus", prof, "--workload", arena_csv, "--rate", 8, "--solver", "exact",
                           "--target-attainment", 0.99, "--duration", 300, "--format", "json")
    assert code == 0
    search = json.loads(out)["attainment"]
    assert search["status"] == "met" and search["found"]["attainment"] >= 0.99
    assert search["baseline"]["attainment"] < 0.99           # the throughput plan misses; the found plan may cost less
    tried = pd.DataFrame(search["tried"])
    cheaper = tried[tried["cost_per_hour"] < search["found"]["cost_per_hour"]]
    assert (cheaper["attainment"] < 0.99).all()               # nothing tried that is cheaper reaches the target
    assert search["neighbours"] and all(n["attainment"] < 0.99 for n in search["neighbours"])
    assert {n["removed"] for n in search["neighbours"]} == set(search["found"]["counts"])
    code, _, err = run_cli(capsys, "solve", "--gpus", prof, "--workload", arena_csv, "--rate", 8,
                           "--target-attainment", 1.5)
    assert code == 2 and "--target-attainment: must be a share of requests in (0, 1]" in err


def re_search(pattern, text):
    import re
    return re.search(pattern, text)


# ---------------------------------------------------------------- latency fits and self-consistency

def test_fit_latency_recovers_a_known_step_model():
    from melange_nb.profiles.latency import fit_latency, step_features

    rng = np.random.default_rng(0)
    n, i, o = rng.integers(1, 256, 300), rng.integers(10, 8000, 300), rng.integers(5, 1000, 300)
    true = np.array([12.0, 0.4, 0.02, 0.0003, 2e-7])
    samples = pd.DataFrame({"concurrency": n, "input_len": i, "output_len": o,
                            "tpot_ms": step_features(n, i, o) @ true,
                            "ttft_ms": step_features(n, i, o, first_token=True) @ true})
    m = fit_latency(samples, max_seqs=256, kv_tokens=10**6, max_step_tokens=8192, source="test")
    got = [m.base, m.per_seq, m.per_prefill_token, m.per_context_token, m.per_prefill_context]
    np.testing.assert_allclose(got, true, rtol=1e-3)
    assert "TPOT error median 0.0%" in m.notes[-1]
    with pytest.raises(InputError, match=r"^samples: a latency fit needs at least 4 measurements"):
        fit_latency(samples.head(3), max_seqs=1, kv_tokens=1, max_step_tokens=1, source="x")


@pytest.mark.slow
def test_profile_fitted_to_its_own_rates_is_self_consistent():
    """Rates made by simulating a known model (midpoint sizes, mean TPOT <= 40 ms); a model fitted to
    those rates (and TPOT at batch 1) reproduces them within 15% (what `profile check` reports)."""
    from melange_nb.profiles.latency import step_features

    true = LatencyModel(10.0, 0.3, 0.03, 0.0002, 0.0, 256, 10**6, 8192, "truth")
    edges = ["0-100", "100-500", "500-2000"]
    tputs = pd.DataFrame(1.0, index=pd.Index(edges, name="input_tokens"), columns=pd.Index(edges, name="output_tokens"))
    meta = {"slo": [{"metric": "tpot", "stat": "mean", "ms": 40.0}]}
    gpu = GpuProfile("G", 1.0, tputs, meta, true)
    for i in edges:
        for o in edges:
            tputs.loc[i, o] = S.bucket_max_rate(gpu, i, o, requests=150, precision=0.01)
    lengths = [50, 300, 1250]
    idle = pd.DataFrame([{"concurrency": 1, "input_len": a, "output_len": b} for a in lengths for b in lengths])
    idle["tpot_ms"] = step_features(idle["concurrency"], idle["input_len"], idle["output_len"]) @ \
        np.array([10.0, 0.3, 0.03, 0.0002, 0.0])
    fitted, table = S.fit_profile_latency(GpuProfile("G", 1.0, tputs, meta), kv_tokens=10**6, max_seqs=256,
                                          max_step_tokens=8192, source="fit: test", idle=idle, refine=1, requests=150)
    assert (abs(table["ratio"] - 1) <= 0.15).all(), table
    assert fitted.source == "fit: test" and "profile check: 9 of 9 buckets within 15%" in fitted.notes[-1]


def test_cli_profile_check_prints_ratios_and_refuses_a_file_without_latency(tmp_path, seed_gpus, capsys):
    small = one_gpu(12.0, max_seqs=256, kv=400000, budget=8192, per_seq=0.4, slo_ms=40)["G"]
    small.tputs.loc[:, :] = [[30.0, 5.0], [0.0, 2.0]]
    prof = save_profiles(tmp_path / "one.yaml", {"G": small})
    code, out, _ = run_cli(capsys, "profile", "check", prof, "--requests", 60, "-o", tmp_path / "check.csv")
    assert code == 0 and out.startswith("G: ") and "buckets within 15%" in out
    table = pd.read_csv(tmp_path / "check.csv")
    assert len(table) == 3
    assert np.allclose(table["ratio"], table["simulated_rate"] / table["profile_rate"])
    code, _, err = run_cli(capsys, "profile", "check", "params/gpus/llama2-7b-seed.yaml")
    assert code == 2 and "has no latency model; add a `latency:` section" in err and len(err.splitlines()) == 1
    # a GPU type that serves no bucket (no latency model needed) is named, not left out silently
    idle = dataclasses.replace(small, name="Z", latency=None)
    idle.tputs.loc[:, :] = 0.0
    both = save_profiles(tmp_path / "two.yaml", {"G": load_gpus(prof)["G"], "Z": idle})
    code, out, _ = run_cli(capsys, "profile", "check", both, "--requests", 60)
    assert code == 0 and "Z: serves no bucket at this SLO (every rate is 0): nothing to check" in out


def test_committed_hand_latency_example_reproduces_the_readme_answer(arena_csv, capsys):
    """The README's `solve --target-attainment` example on the committed hand-written latency models."""
    code, out, _ = run_cli(capsys, "solve", "--workload", arena_csv, "--gpus", HAND_LATENCY, "--rate", 8,
                           "--target-attainment", 0.99, "--format", "text")
    assert code == 0
    assert "1×A10G + 2×A100 ($8.35/h, throughput only) meets TPOT ≤ 40 ms for 58.5% of requests" in out
    assert "7×A10G ($7.07/h) meets it for 99.6%" in out and "one A10G less: 90.6%" in out


def test_profile_import_fits_a_latency_model_to_measured_runs(tmp_path, capsys):
    """Runs of a server whose steps take 12 ms + 4 ms per request in flight + 0.1 ms per prefill token
    (TPOT as `step_features` averages it; TTFT = the step that prefills the prompt): read through
    `profile import`, at the concurrency Little's law gives, the fitted model gives that TPOT back."""
    from melange_nb.profiles.latency import step_features

    paths = []
    for isl in (50, 400):
        for n in (2, 5, 8, 12):
            tpot = 12 + 4 * n + 0.1 * (n - 1) * isl / 50
            ttft = tpot + 0.1 * isl
            e2e = ttft + 49 * tpot
            rate = n / (e2e / 1e3)
            doc = {"date": "20261124-101500", "backend": "vllm", "model_id": "m", "tokenizer_id": "m",
                   "num_prompts": 100, "request_rate": rate, "duration": 100 / rate, "completed": 100,
                   "total_input_tokens": isl * 100, "total_output_tokens": 5000, "request_throughput": rate,
                   "mean_ttft_ms": ttft, "mean_tpot_ms": tpot, "mean_itl_ms": tpot, "mean_e2el_ms": e2e}
            paths.append(tmp_path / f"r-{isl}-{n}.json")
            paths[-1].write_text(json.dumps(doc))
    code, out, err = run_cli(capsys, "profile", "import", *paths, "--gpu", "T", "--cost", 1, "--slo", "tpot_ms=40",
                             "--edges", "0,100,1000", "--output-edges", "0,100", "--kv-tokens", 50000,
                             "-o", tmp_path / "m.yaml")
    assert code == 0, err
    lat = load_gpus(tmp_path / "m.yaml")["T"].latency
    assert lat.source == "fit:measured" and lat.kv_tokens == 50000 and lat.max_seqs == 256
    for isl in (50, 400):
        for n in (2, 5, 8, 12):
            predicted = step_features([n], [isl], [50]) @ np.array([lat.base, lat.per_seq, lat.per_prefill_token,
                                                                   lat.per_context_token, lat.per_prefill_context])
            assert predicted[0] == pytest.approx(12 + 4 * n + 0.1 * (n - 1) * isl / 50, rel=0.03)


# ---------------------------------------------------------------- a real serving loop: AIPerf vs the simulator
#
# tests/llm_test_server.py in its iteration-level mode (Latency(batched=True): all requests in flight
# advance one token per step of a + b x N ms, plus prefill_ms_per_token x the prompts joining that
# step, whose first token it gives) is served over HTTP and driven by AIPerf (.venv-bench) replaying
# a timestamped stream (mooncake_trace, fixed schedule) in three phases of rising rate. The simulator
# gets the same requests at the times the server acknowledged them, with the matching latency model,
# and must reproduce AIPerf's p50/p99 TTFT (from that acknowledgement) and TPOT per phase within 15%
# and the attainment within 3 points. Each phase's TPOT threshold is its measured median, so the
# attainment check splits the requests where it is most sensitive.

AIPERF = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "aiperf"
PHASES = ((2.0, 25.0), (4.0, 25.0), (5.5, 25.0))      # (requests/s, seconds), 8 s apart to drain


@pytest.fixture(scope="module")
def aiperf_replay(tmp_path_factory):
    import os
    import subprocess
    import sys

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from melange_nb.chats import load_tokenizer

    if not AIPERF.exists():
        pytest.skip(f"AIPerf not installed at {AIPERF}: run `make bench-client` (make test does it)")
    sys.path.insert(0, str(Path(__file__).parent))
    from llm_test_server import Latency, LlmTestServer

    work = tmp_path_factory.mktemp("aiperf-sim")
    tok, _ = load_tokenizer()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(work / "tokenizer")
    plain = Tokenizer.from_file(str(work / "tokenizer" / "tokenizer.json"))
    rng = np.random.default_rng(3)
    rows, start = [], 0.0
    for phase, (rate, seconds) in enumerate(PHASES):
        t = start + np.cumsum(rng.exponential(1 / rate, int(rate * seconds * 1.5)))
        for when in t[t < start + seconds]:
            rows.append({"timestamp": int(when * 1000), "input_length": int(rng.integers(20, 200)),
                         "output_length": int(rng.integers(10, 60))})
        start += seconds + 8.0
    (work / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    latency = Latency(a_ms=12.0, b_ms=4.0, prefill_ms_per_token=0.2, batched=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    with LlmTestServer(lambda text: len(plain.encode(text, add_special_tokens=False).ids), latency) as server:
        cmd = [str(AIPERF), "profile", "--model", "llama-test", "--url", server.base_url, "--endpoint-type",
               "completions", "--streaming", "--tokenizer", str(work / "tokenizer"), "--input-file",
               str(work / "trace.jsonl"), "--custom-dataset-type", "mooncake_trace", "--fixed-schedule",
               "--extra-inputs", "ignore_eos:true", "--prompt-corpus", "sonnet", "--artifact-dir",
               str(work / "artifacts"), "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry",
               "--workers-max", "1", "--record-processors", "1"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in (work / "artifacts" / "profile_export.jsonl").read_text().splitlines()]
    # the server's clock starts at the request's acknowledgement (the streamed reply's headers, which it
    # writes on arrival): AIPerf's TTFT also counts sending the request, which is not the server's time
    measured = pd.DataFrame([{"start_ns": r["metadata"]["request_ack_ns"],
                              "sent_ms": (r["metadata"]["request_ack_ns"] - r["metadata"]["request_start_ns"]) / 1e6,
                              "input_tokens": r["metrics"]["usage_prompt_tokens"]["value"],
                              "output_tokens": r["metrics"]["output_sequence_length"]["value"],
                              "ttft_ms": r["metrics"]["time_to_first_token"]["value"],
                              "tpot_ms": r["metrics"]["inter_token_latency"]["value"]} for r in records])
    measured["ttft_ms"] -= measured["sent_ms"]
    measured = measured.sort_values("start_ns", ignore_index=True)
    measured["arrival_s"] = (measured["start_ns"] - measured["start_ns"].iloc[0]) / 1e9
    return measured, latency, len(rows)


@pytest.mark.slow
def test_simulator_reproduces_aiperf_on_an_iteration_level_server(aiperf_replay):
    measured, law, sent = aiperf_replay
    assert len(measured) == sent
    lat = LatencyModel(law.a_ms, law.b_ms, law.prefill_ms_per_token, 0.0, 0.0, 10**6, 10**12, 10**9, "test server")
    gpus = one_gpu(1.0)
    gpus["G"] = dataclasses.replace(gpus["G"], latency=lat)
    stream = fixed_stream(*(measured[c].to_numpy() for c in ("arrival_s", "input_tokens", "output_tokens")))
    wl = pd.DataFrame([[0.0, 1.0], [0.0, 0.0]], index=pd.Index(["0-10", "10-1000"], name="input_tokens"),
                      columns=pd.Index(["0-10", "10-1000"], name="output_tokens"))
    sim = S.simulate(stream, S.load_plan({"G": 1}, gpus, workload=wl), gpus, slo="tpot_ms=1e9").requests
    edges = np.cumsum([0.0] + [s + 8.0 for _, s in PHASES])
    lines = []
    for k, (rate, _) in enumerate(PHASES):
        mask = ((measured["arrival_s"] >= edges[k] - 0.5) & (measured["arrival_s"] < edges[k + 1] - 0.5)).to_numpy()
        m, s = measured[mask], sim[mask]
        slo = float(m["tpot_ms"].median())                 # a threshold that splits the phase: a sensitive check
        att_m, att_s = (m["tpot_ms"] <= slo).mean(), (s["tpot_ms"] <= slo).mean()
        for col in ("ttft_ms", "tpot_ms"):
            for q in (0.5, 0.99):
                got, want = s[col].quantile(q), m[col].quantile(q)
                lines.append(f"{rate:g} req/s {col} p{int(q * 100)}: AIPerf {want:.1f}, simulated {got:.1f}")
                assert got == pytest.approx(want, rel=0.15), lines[-1]
        lines.append(f"{rate:g} req/s attainment at TPOT <= {slo:.1f} ms: AIPerf {att_m:.1%}, simulated {att_s:.1%}")
        assert abs(att_m - att_s) <= 0.03, lines[-1]
    print("\n" + "\n".join(lines))


def test_cli_simulate_target_attainment_on_a_trace(tmp_path, arena_csv, capsys):
    gen = S.stream_from_workload(read_workload(arena_csv), 8, 300, seed=2)       # Arena sizes, 8 req/s
    stamps = pd.Timestamp("2024-01-01 10:00:00") + pd.to_timedelta(gen["arrival_s"], unit="s")
    pd.DataFrame({"TIMESTAMP": stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f"), "ContextTokens": gen["input_tokens"],
                  "GeneratedTokens": gen["output_tokens"]}).to_csv(tmp_path / "trace.csv", index=False)
    prof = hand_profile(tmp_path)
    code, out, _ = run_cli(capsys, "simulate", "--gpus", prof, "--trace", tmp_path / "trace.csv",
                           "--target-attainment", 0.99, "--format", "json", "-o", tmp_path / "sim")
    doc = json.loads(out)
    search = doc["attainment"]
    assert code == (0 if search["status"] == "met" else 1)
    assert search["found"]["attainment"] >= 0.99 and doc["summary"][-1]["attainment"] == pytest.approx(
        search["found"]["attainment"], abs=1e-6)
    assert search["baseline"]["attainment"] < 0.99
    assert (tmp_path / "sim" / "attainment.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama3.1-8b-tpot40.yaml", "llama3.1-8b-tpot120.yaml"])
def test_committed_predicted_profiles_carry_consistent_latency_models(name):
    """Self-consistency (issue 17, point 1): per bucket, one replica's simulated max rate under the
    committed latency model against the profile's rate. Every GPU type that serves a bucket has a
    model; its check reproduces what its notes record, and for GPUs with measured kernel data most
    buckets are within 15% (a speed-of-light system, L4, has no batch-1 anchor: only the record)."""
    import re

    gpus = load_gpus(GPUS_DIR / name)
    serving = {g: p for g, p in gpus.items() if p.tputs.to_numpy().max() > 0}
    assert serving and all(p.latency is not None for p in serving.values())
    table = S.check_profiles(serving, requests=300)
    for g, part in table.groupby("gpu"):
        within = int((abs(part["ratio"] - 1) <= 0.15).sum())
        recorded = re.search(r"profile check: (\d+) of (\d+) buckets within 15%", serving[g].latency.notes[-1])
        assert recorded and int(recorded.group(2)) == len(part)
        assert abs(within - int(recorded.group(1))) <= 2, (g, within, recorded.group(0))
        if "(sol)" not in serving[g].latency.source:
            assert within >= 0.7 * len(part) and 0.9 <= part["ratio"].median() <= 1.1, (g, within, len(part))


def test_search_keeps_min_instances_in_every_plan_it_returns(arena_csv):
    """A type that must keep 2 replicas is never tried, or returned, with fewer (each type alone too)."""
    from melange_nb.solver import Constraints

    gpus = load_gpus(HAND_LATENCY)
    search = S.search_attainment(read_workload(arena_csv), gpus, 4.0, 0.95, duration_s=120,
                                 constraints=Constraints(min_instances={"A100": 2}))
    assert search.status == "met" and search.found["counts"].get("A100", 0) >= 2
    assert all("A100" in mix for mix in search.tried["mix"])
