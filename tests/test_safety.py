"""Safe to share, hard to break (issue 20): hostile values never become a shell command, a YAML key
or markup, and no small input makes the tool work without bound. One test (or a few) per class,
through the real command where it matters; the page classes are in test_pages_safety.py."""
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from melange_nb.cli import main
from melange_nb.config import GPUS_DIR, WORKLOADS_DIR

GPUS = str(GPUS_DIR / "llama2-7b-seed.yaml")
ARENA = str(WORKLOADS_DIR / "arena-seed.csv")
WORKLOAD = "input_tokens,0-25,25-100\n0-25,0.25,0.25\n25-100,0.25,0.25\n"
# Names that are printable (so they are valid) but would run, inject or render if not quoted.
HOSTILE = ["$(touch PWNED)", "`touch PWNED`", "L4 (24GB); touch PWNED", "<script>alert(1)</script>",
           "x' onerror='alert(1)", "a\"b'c\\d"]


def cli(argv, cwd, capsys):
    """main(argv) in `cwd`: (exit code, stdout, stderr lines)."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def one_line(code, err, message):
    assert code == 2, (code, err)
    assert len(err) == 1 and err[0].startswith("melange-nb: error: ") and message in err[0], err


def profile_yaml(names, cost=1.0):
    """A two-bucket profile file with these GPU names (written with the YAML library, so any name fits)."""
    return yaml.safe_dump({"input_edges": [0, 25, 100], "output_edges": [0, 25, 100],
                           "gpus": {n: {"cost": cost + k, "tputs": [[4, 3], [2, 1]]} for k, n in enumerate(names)}})


# ---------------------------------------------------------------- 1. generated shell scripts

def test_benchmark_script_runs_hostile_values_as_data(tmp_path, capsys):
    """run_benchmarks.sh with hostile --gpu/--model/--tokenizer/--base-url runs under bash with a stub
    `vllm` on PATH: nothing executes, and vllm receives every value verbatim as one argument."""
    stub = tmp_path / "bin" / "vllm"
    stub.parent.mkdir()
    stub.write_text('#!/usr/bin/env bash\nfor a in "$@"; do printf "%s\\0" "$a"; done >> "$VLLM_LOG"\n'
                    'printf "\\n\\0" >> "$VLLM_LOG"\n')
    stub.chmod(0o755)
    for k, gpu in enumerate(HOSTILE):
        model = f"org/model {HOSTILE[(k + 1) % len(HOSTILE)]}"
        out = tmp_path / f"plan{k}"
        code, _, err = cli(["profile", "plan", "--gpu", gpu, "--model", model, "--tokenizer", HOSTILE[k - 1],
                            "--base-url", "http://127.0.0.1:8000/$(touch PWNED)", "--edges", "0,100",
                            "--output-edges", "0,100", "--rates", "1,2", "-o", out], tmp_path, capsys)
        assert code == 0, err
        log = tmp_path / f"vllm{k}.log"
        env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "VLLM_LOG": str(log)}
        done = subprocess.run(["bash", str(out / "run_benchmarks.sh")], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr                  # no syntax error, even for 'L4 (24GB)'
        assert not list(tmp_path.rglob("PWNED")), gpu
        calls = [c.strip("\0").split("\0") for c in log.read_text().split("\n\0") if c.strip("\0")]
        assert len(calls) == 2
        for argv in calls:
            assert argv[argv.index("--model") + 1] == model
            assert argv[argv.index("--tokenizer") + 1] == HOSTILE[k - 1]
        readme = (out / "README.md").read_text()       # its commands, pasted into a shell, quote the values too
        serve = readme.split("(e.g. `")[1].split("`)")[0]
        assert shlex.split(serve) == ["vllm", "serve", model]
        # the printed next step is one shell command whose --gpu is the name, verbatim
        line = done.stdout.strip().splitlines()[-1]
        assert line.startswith("done; next: melange-nb profile import")
        words = shlex.split(line.partition("next: ")[2])
        assert words[words.index("--gpu") + 1] == gpu


@pytest.mark.parametrize("option,value", [("--model", "m\ntouch PWNED"), ("--gpu", "L4\n#"), ("--gpu", "a\0b"),
                                          ("--gpu", "x" * 300), ("--base-url", "http://h\rx"), ("--gpu", "")])
def test_benchmark_plan_refuses_control_characters_and_long_names(tmp_path, capsys, option, value):
    args = {"--gpu": "L4", "--model": "m", "--base-url": "http://127.0.0.1:8000", option: value}
    code, _, err = cli(["profile", "plan", *[x for kv in args.items() for x in kv], "-o", tmp_path / "p"],
                       tmp_path, capsys)
    one_line(code, err, option)
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------- 2. exported YAML

def test_exported_yaml_carries_hostile_names_as_values_only(tmp_path, capsys):
    names = ["$(touch PWNED)", "`touch PWNED2`", "L4 (24GB); touch PWNED3", "A100 # run: rm -rf /", "null",
             "!!python/object:os.system x", "&a *b", "- [run, 1e3]", "yes"]
    (tmp_path / "gpus.yaml").write_text(profile_yaml(names))
    (tmp_path / "w.csv").write_text(WORKLOAD)
    code, _, err = cli(["solve", "--workload", "w.csv", "--gpus", "gpus.yaml", "--rate", "20", "--solver", "exact",
                        "--format", "json", "--export", "out"], tmp_path, capsys)
    assert code == 0, err
    deploy = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert deploy["gpus"]
    for gpu, entry in deploy["gpus"].items():
        doc = yaml.safe_load((tmp_path / "out" / entry["service_file"]).read_text())
        assert set(doc) == {"name", "resources", "envs", "service"}       # no injected `run:` or other key
        assert doc["envs"]["MELANGE_GPU"] == gpu
    assert not list(tmp_path.rglob("PWNED"))
    # every name through the export layer itself, each as a GPU in use
    from melange_nb.export import service_file_name, write_exports

    deploy = {"format": "melange-nb deploy v1", "kind": "static", "solver": "exact", "routes": [],
              "gpus": {n: {"accelerator": f"{n}:1", "cost_per_hour": 1.0, "min_replicas": 1, "max_replicas": 2,
                           "target_qps_per_replica": 1.5, "service_file": service_file_name(n)} for n in names}}
    write_exports(deploy, tmp_path / "all")
    for n in names:
        doc = yaml.safe_load((tmp_path / "all" / service_file_name(n)).read_text())
        assert set(doc) == {"name", "resources", "envs", "service"} and doc["envs"]["MELANGE_GPU"] == n
        assert doc["resources"]["accelerators"] == f"{n}:1"


@pytest.mark.parametrize("names,message", [(["A100", "A\nrun: touch PWNED"], "control character"),
                                           (["A100", "A\0B"], "control character"),
                                           (["A-100", "A 100"], "are the same in file names"),
                                           (["A100", "G" * 300], "at most 64"),
                                           (["A100", "(+)"], "needs a letter or digit")])
def test_bad_gpu_names_refused_where_profiles_load(tmp_path, capsys, names, message):
    """The one check where profiles load: solve --export and plan write nothing at all."""
    (tmp_path / "gpus.yaml").write_text(profile_yaml(names))
    (tmp_path / "w.csv").write_text(WORKLOAD)
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00,10,10\n"
                                    "2023-11-16T18:10:00,50,50\n")
    code, _, err = cli(["solve", "--workload", "w.csv", "--gpus", "gpus.yaml", "--rate", "4", "--export", "out"],
                       tmp_path, capsys)
    one_line(code, err, message)
    code, _, err = cli(["plan", "--trace", "t.csv", "--gpus", "gpus.yaml", "-o", "plan"], tmp_path, capsys)
    one_line(code, err, message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "plan").exists()


def test_export_replaces_the_previous_set(tmp_path, capsys):
    (tmp_path / "gpus.yaml").write_text(profile_yaml(["A10G", "A100", "H100"]))
    (tmp_path / "w.csv").write_text(WORKLOAD)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "skyserve-mine.yaml").write_text("kept: true\n")     # not ours: never removed
    first = cli(["solve", "--workload", "w.csv", "--gpus", "gpus.yaml", "--rate", "30", "--solver", "exact",
                 "--min-instances", "A100=1,H100=1", "--format", "json", "--export", "out"], tmp_path, capsys)
    assert first[0] == 0, first
    before = set(json.loads((tmp_path / "out" / "deploy.json").read_text())["gpus"])
    assert before == {"A10G", "A100", "H100"}
    cli(["solve", "--workload", "w.csv", "--gpus", "gpus.yaml", "--gpu", "A10G", "--rate", "30", "--format", "json",
         "--export", "out"], tmp_path, capsys)
    deploy = json.loads((tmp_path / "out" / "deploy.json").read_text())
    listed = {e["service_file"] for e in deploy["gpus"].values()}
    on_disk = {p.name for p in (tmp_path / "out").glob("skyserve-*.yaml")}
    assert listed == {"skyserve-a10g.yaml"} and on_disk == listed | {"skyserve-mine.yaml"}
    assert not list((tmp_path / "out").glob(".*tmp"))


# ---------------------------------------------------------------- 4. bounded work

BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB


def test_yaml_alias_bombs_refused_in_every_file_kind(tmp_path, capsys):
    """A 1 KB "billion laughs" (9^9 values once expanded) in a profile's notes, a price file, a run's
    workload edges and a sweep's published notes: one line each, exit 2 (and quickly: no expansion)."""
    assert len(BOMB) < 1024
    indent = "".join("  " + line + "\n" for line in BOMB.splitlines())
    (tmp_path / "w.csv").write_text(WORKLOAD)
    (tmp_path / "gpus.yaml").write_text(profile_yaml(["A10G"]) + "bomb:\n" + indent + "notes: *i\n")
    (tmp_path / "run.yaml").write_text(f"gpus: {GPUS}\nrate: 4\nbomb:\n{indent}workload: {{trace: t.csv, edges: *i}}\n")
    (tmp_path / "sweep.yaml").write_text(f"name: s\nrates: [1]\nworkloads: {{w: w.csv}}\ngpus: {{g: {GPUS}}}\n"
                                         f"bomb:\n{indent}published: {{source: x, notes: *i}}\n")
    (tmp_path / "prices.yaml").write_text("bomb:\n" + indent + "notes: *i\n")
    for argv in (["solve", "--workload", "w.csv", "--gpus", "gpus.yaml", "--rate", "4"],
                 ["run", "-p", "run.yaml"], ["sweep", "-p", "sweep.yaml", "-o", "s"],
                 ["profile", "import", "r.json", "--gpu", "L4", "--prices", "prices.yaml", "--slo", "tpot_ms=40",
                  "-o", "p.yaml"]):
        code, _, err = cli(argv, tmp_path, capsys)
        one_line(code, err, "expand to more than 100,000 values")


def test_anchors_within_the_bound_still_load(tmp_path):
    from melange_nb.files import read_yaml

    (tmp_path / "ok.yaml").write_text("base: &b {cost: 1}\nx: *b\ny: *b\n")
    assert read_yaml(tmp_path / "ok.yaml", "f", "e") == {"base": {"cost": 1}, "x": {"cost": 1}, "y": {"cost": 1}}


@pytest.mark.parametrize("window", ["1ns", "1ms"])
def test_plan_window_count_is_bounded(tmp_path, capsys, window):
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00,10,10\n"
                                    "2023-11-16T19:00:00,50,50\n")
    code, _, err = cli(["plan", "--trace", "t.csv", "--gpus", GPUS, "--window", window, "-o", "p"], tmp_path, capsys)
    one_line(code, err, "at most 100,000")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("rates,message", [("{start: 1, stop: .inf, step: 1}", "finite"),
                                           ("{start: 1, stop: 1e7, step: 1}", "at most 100,000 points"),
                                           ("{start: 1, stop: 2, step: 1e-9}", "at most 100,000 points"),
                                           ("{start: 1, stop: 5000, step: 1}\nslice_factors: [1, 2, 3, 4, 5, 6, 7, 8, "
                                            "9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]", "105,000 points")])
def test_absurd_sweep_grids_refused_up_front(tmp_path, capsys, rates, message):
    (tmp_path / "s.yaml").write_text(f"name: s\nrates: {rates}\nworkloads: {{w: {ARENA}}}\ngpus: {{g: {GPUS}}}\n")
    code, _, err = cli(["sweep", "-p", "s.yaml", "-o", "out"], tmp_path, capsys)
    one_line(code, err, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field", ["name", "workloads", "gpus"])
def test_over_long_sweep_names_are_one_line(tmp_path, capsys, field):
    names = {"name": "s", "workloads": "w", "gpus": "g", field: "n" * 300}
    (tmp_path / "s.yaml").write_text(f"name: {names['name']}\nrates: [1]\nworkloads: {{{names['workloads']}: {ARENA}}}\n"
                                     f"gpus: {{{names['gpus']}: {GPUS}}}\n")
    code, _, err = cli(["sweep", "-p", "s.yaml"], tmp_path, capsys)
    one_line(code, err, "100")


@pytest.mark.parametrize("argv", [
    ["solve", "--workload", ARENA, "--gpus", GPUS, "--rate", "4", "-o", "LONG.json"],
    ["solve", "--workload", ARENA, "--gpus", GPUS, "--rate", "4", "--export", "LONG"],
    ["sweep", "--workload", ARENA, "--gpus", GPUS, "--rates", "1", "-o", "LONG"],
    ["plan", "--trace", "t.csv", "--gpus", GPUS, "-o", "LONG"], ["workload", "--trace", "t.csv", "-o", "LONG.csv"],
    ["profile", "plan", "--gpu", "L4", "--model", "m", "--base-url", "http://h", "-o", "LONG"],
    ["profile", "import", "r.json", "--gpu", "L4", "--cost", "1", "--slo", "tpot_ms=40", "-o", "LONG.yaml"]])
def test_over_long_output_paths_are_one_line(tmp_path, capsys, argv):
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00,10,10\n")
    code, _, err = cli([a.replace("LONG", "n" * 300) for a in argv], tmp_path, capsys)
    one_line(code, err, "choose a shorter path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_over_long_run_name_is_one_line(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text(f"run_name: {'r' * 300}\nworkload: {ARENA}\ngpus: {GPUS}\nrate: 4\n")
    code, _, err = cli(["run", "-p", "run.yaml"], tmp_path, capsys)
    one_line(code, err, "at most 100")


# ---------------------------------------------------------------- 5. profile predict / import check what they read

@pytest.mark.parametrize("config,message", [
    ('{"architectures": ["LlamaForCausalLM"], "hidden_size": 4', "is not valid JSON"),
    ("{}", "architectures"), ("[1, 2]", "must be a JSON object"),
    ('{"architectures": ["LlamaForCausalLM"], "hidden_size": -4096, "num_attention_heads": 32, '
     '"vocab_size": 100, "max_position_embeddings": 4096}', "hidden_size"),
    ('{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_attention_heads": "32", '
     '"vocab_size": 100, "max_position_embeddings": 4096}', "num_attention_heads"),
    ('{"architectures": ["<script>"], "hidden_size": 4096}', "not supported"),
    ('{"a": 1, "a": 2}', "twice")])
def test_predict_refuses_malformed_model_configs(tmp_path, capsys, config, message):
    pytest.importorskip("aiconfigurator_core")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(config)
    code, _, err = cli(["profile", "predict", "--model", "model", "--gpu", "h100_sxm=H100", "--slo", "tpot_ms=40",
                        "-o", "p.yaml"], tmp_path, capsys)
    one_line(code, err, message)
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize("argv,message", [(["--tp", "3"], "does not divide the model's 32 attention heads"),
                                          (["--tp", "1000"], "from 1 to 64"), (["--tp", "0"], "from 1 to 64"),
                                          (["--gpu", "h100_sxm=A\nB"], "control character"),
                                          (["--gpu", "h100_sxm=x-y", "--gpu", "l40s=X Y"], "same in file names")])
def test_predict_refuses_bad_tp_and_names_up_front(tmp_path, capsys, argv, message):
    pytest.importorskip("aiconfigurator_core")
    gpu = [] if "--gpu" in argv else ["--gpu", "h100_sxm=H100"]
    code, _, err = cli(["profile", "predict", "--model", "meta-llama/Meta-Llama-3.1-8B", *gpu, *argv,
                        "--slo", "tpot_ms=40", "--edges", "0,100", "--output-edges", "0,100", "--no-cache",
                        "-o", "p.yaml"], tmp_path, capsys)
    one_line(code, err, message)


def test_predict_slo_no_bucket_can_meet_is_an_error(tmp_path, capsys):
    pytest.importorskip("aiconfigurator_core")
    code, _, err = cli(["profile", "predict", "--model", "meta-llama/Meta-Llama-3.1-8B", "--gpu", "h100_sxm=H100",
                        "--slo", "tpot_ms=1", "--edges", "0,100", "--output-edges", "0,100", "-o", "p.yaml"],
                       tmp_path, capsys)
    one_line(code, err, "no bucket can be served at mean TPOT <= 1 ms")
    assert not (tmp_path / "p.yaml").exists()


def vllm(rate, tpot, **extra):
    doc = {"date": "20261124-101500", "backend": "vllm", "model_id": "m", "request_rate": rate, "duration": 10.0,
           "completed": 100, "total_input_tokens": 5000, "total_output_tokens": 5000, "request_throughput": rate,
           "mean_tpot_ms": tpot, "median_tpot_ms": tpot, "p99_tpot_ms": tpot, "mean_ttft_ms": 50.0}
    doc.update(extra)
    return json.dumps(doc)


@pytest.mark.parametrize("text,argv,message", [
    (vllm(-2, 30), [], "request_throughput"), (vllm(0, 30), [], "request_throughput"),
    (vllm(2, -30), [], "negative latency"), (vllm(2, 30)[:-1] + ', "mean_tpot_ms": 20}', [], "twice"),
    (vllm(2, 30), ["--cost", "inf"], "--cost"), (vllm(2, 30), ["--cost", "nan"], "--cost"),
    (vllm(2, 30), ["--gpu", ""], "--gpu"), (vllm(2, 30), ["--gpu", "L4\nx: 1"], "control character"),
    (vllm(2, 30), ["--slo", "tpot_ms=1"], "no bucket can be served")])
def test_import_refuses_what_solve_would_refuse(tmp_path, capsys, text, argv, message):
    (tmp_path / "r.json").write_text(text)
    opts = {"--gpu": "L4", "--cost": "1", "--slo": "tpot_ms=40"}
    for k in range(0, len(argv), 2):
        opts[argv[k]] = argv[k + 1]
    code, _, err = cli(["profile", "import", "r.json", *[x for kv in opts.items() for x in kv],
                        "--edges", "0,100", "--output-edges", "0,100", "-o", "p.yaml"], tmp_path, capsys)
    one_line(code, err, message)
    assert not (tmp_path / "p.yaml").exists()


def test_import_runs_at_the_same_rate_do_not_depend_on_file_order(tmp_path, capsys):
    """Two runs at 2 req/s disagree (25 vs 45 ms): the worst counts whatever the order, and it is said."""
    files = {"a.json": vllm(1, 20), "b.json": vllm(2, 25), "c.json": vllm(2, 45), "d.json": vllm(4, 60)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    results = []
    for order in (["a.json", "b.json", "c.json", "d.json"], ["d.json", "c.json", "b.json", "a.json"]):
        code, _, err = cli(["profile", "import", *order, "--gpu", "L4", "--cost", "1", "--slo", "tpot_ms=40",
                            "--edges", "0,100", "--output-edges", "0,100", "-o", "p.yaml"], tmp_path, capsys)
        assert code == 0 and any("merged (the worst latency of each counts)" in e for e in err), err
        results.append(yaml.safe_load((tmp_path / "p.yaml").read_text())["gpus"]["L4"]["tputs"])
    assert results[0] == results[1] == [[pytest.approx(1 + 20 / 25)]]      # 20 ms @1 -> 45 ms @2 crosses 40 at 1.8


# ---------------------------------------------------------------- 6. timestamps and encodings

def test_trace_with_mixed_offsets_is_converted_to_utc(tmp_path):
    from melange_nb.plan import read_timed_trace

    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00+00:00,10,10\n"
                                    "2023-11-16T20:05:00+02:00,20,20\n2023-11-16T18:10:00Z,30,30\n")
    requests, _ = read_timed_trace(tmp_path / "t.csv")
    assert [str(t) for t in requests["timestamp"]] == ["2023-11-16 18:00:00", "2023-11-16 18:05:00",
                                                       "2023-11-16 18:10:00"]


def test_trace_mixing_naive_and_utc_stamps_is_refused(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00,10,10\n"
                                    "2023-11-16T18:05:00Z,20,20\n")
    code, _, err = cli(["plan", "--trace", "t.csv", "--gpus", GPUS, "-o", "p"], tmp_path, capsys)
    one_line(code, err, "mixes timestamps with a UTC offset")


def test_latin1_files_are_one_line(tmp_path, capsys):
    (tmp_path / "w.csv").write_bytes("# café\n".encode("latin-1") + Path(ARENA).read_bytes())
    (tmp_path / "t.csv").write_bytes("TIMESTAMP,ContextTokens,GeneratedTokens\n# café\n".encode("latin-1"))
    code, _, err = cli(["solve", "--workload", "w.csv", "--gpus", GPUS, "--rate", "4"], tmp_path, capsys)
    one_line(code, err, "is not UTF-8 text")
    code, _, err = cli(["plan", "--trace", "t.csv", "--gpus", GPUS, "-o", "p"], tmp_path, capsys)
    one_line(code, err, "is not UTF-8 text")


def test_trace_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    from melange_nb.plan import read_timed_trace

    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbfTIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00,10,10\n")
    assert len(read_timed_trace(tmp_path / "t.csv")[0]) == 1


@pytest.mark.parametrize("argv,message", [
    (["workload", "--trace", "t.csv", "--edges", ",".join(map(str, range(0, 3000, 10))), "-o", "w.csv"], "at most 256"),
    (["plan", "--trace", "t.csv", "--gpus", GPUS, "-j", "100000", "-o", "p"], "<= 64"),
    (["sweep", "--workload", ARENA, "--gpus", GPUS, "--rates", "1", "-j", "100000", "-o", "s"], "from 1 to 64")])
def test_bucket_and_worker_counts_are_bounded(tmp_path, capsys, argv, message):
    (tmp_path / "t.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:00:00,10,10\n")
    code, _, err = cli(argv, tmp_path, capsys)
    one_line(code, err, message)


# ---------------------------------------------------------------- 3. pages (fast part; rendered pages: test_pages_safety.py)

def test_styled_tables_and_text_escape_everything_they_show():
    import pandas as pd

    from melange_nb.report import styled, text_html

    frame = pd.DataFrame({"<b>gpu</b>": ["<script>x()</script>", "y"], "share": [0.5, 0.25]},
                         index=pd.Index(["<img src=x onerror=x()>", "b"], name="<i>n</i>"))
    html = styled(frame, {"share": "{:.1%}"}, na_rep="—").to_html()
    assert "<script>" not in html and "<img" not in html and "<b>gpu" not in html and "<i>n" not in html
    assert "&lt;script&gt;" in html and "50.0%" in html
    assert "<script>" not in text_html("a <script>x()</script>\n\nb") and text_html("a\n\nb").count("<p>") == 2


def test_notebooks_show_tables_and_text_only_through_the_escaping_helpers():
    """A Styler or Markdown built straight from data would pass names through unescaped."""
    import re

    from melange_nb.config import NOTEBOOKS_DIR

    for nb in sorted(NOTEBOOKS_DIR.glob("0[1-4]_*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert not re.search(r"\.style\b", code), nb.name
        assert not re.search(r"Markdown\(\s*f?[\"'].*\{", code), nb.name


def test_broken_workload_sidecar_is_one_line(tmp_path, capsys):
    (tmp_path / "w.csv").write_text(WORKLOAD)
    (tmp_path / "w.json").write_text('{"source": "a", "source": "b"}')
    (tmp_path / "gpus.yaml").write_text(profile_yaml(["A10G"]))
    code, _, err = cli(["solve", "--workload", "w.csv", "--gpus", "gpus.yaml", "--rate", "4"], tmp_path, capsys)
    one_line(code, err, "workload sidecar")
