"""Bad input through the real command: exit 2, exactly one stderr line naming the field, no
traceback, nothing written. One case per kind of input (profile YAML, melange JSON, workload CSV,
chat dataset, run params, solve options, output paths)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from melange_nb.cli import main
from melange_nb.config import GPUS_DIR, WORKLOADS_DIR

GPUS = str(GPUS_DIR / "llama2-7b-seed.yaml")
ARENA = str(WORKLOADS_DIR / "arena-seed.csv")
PROFILE = """input_edges: {edges}
output_edges: [0, 25, 100]
gpus:
  A: {{cost: {cost}, tputs: [[1, 2], [3, {cell}]]}}
  B: {{cost: 2.0, tputs: [[2, 4], [6, 8]]}}
"""
WORKLOAD = "input_tokens,0-25,25-100\n0-25,0.25,0.25\n25-100,0.25,0.25\n"
CONFIG = {"gpu_info": {"A": {"cost": 1.0, "tputs": [[1, 2], [3, 4]]}, "B": {"cost": 2.0, "tputs": [[2, 4], [6, 8]]}},
          "workload_distribution": [[0.25, 0.25], [0.25, 0.25]], "total_request_rate": 4}


def profile(edges="[0, 25, 100]", cost="1.0", cell="4"):
    return PROFILE.format(edges=edges, cost=cost, cell=cell)


def run_cli(argv, cwd: Path, capsys):
    """main(argv) in `cwd`: (exit code, stdout, stderr lines, files created under cwd)."""
    before = {p for p in cwd.rglob("*")}
    old = os.getcwd()
    os.chdir(cwd)
    try:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:        # argparse's usage errors
            code = exc.code
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    created = sorted(str(p.relative_to(cwd)) for p in set(cwd.rglob("*")) - before)
    return code, out.out, out.err.strip().splitlines(), created


def assert_one_line(code, out, err, created, message):
    assert code == 2, (code, out, err)
    assert len(err) == 1 and err[0].startswith("melange-nb: error: "), err
    assert "Traceback" not in err[0] and message in err[0], err
    assert out == "" and created == [], (out, created)


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


# ---------------------------------------------------------------- GPU profile YAML

PROFILE_CASES = {
    "duplicate GPU name": (profile() + "  A: {cost: 3.0, tputs: [[1, 1], [1, 1]]}\n", "duplicate key 'A'"),
    "boolean throughput": (profile(cell="true"), "gpus.A.tputs[1][1]: must be a finite number"),
    "string throughput": (profile(cell="'4'"), "gpus.A.tputs[1][1]: must be a finite number"),
    "null throughput": (profile(cell="null"), "gpus.A.tputs[1][1]: is empty"),
    "infinite throughput": (profile(cell=".inf"), "gpus.A.tputs[1][1]: must be a finite number"),
    "negative throughput": (profile(cell="-1"), "gpus.A.tputs: has negative throughputs"),
    "boolean cost": (profile(cost="true"), "gpus.A.cost: must be a positive number"),
    "nan cost": (profile(cost=".nan"), "gpus.A.cost: must be a positive number"),
    "null edge": (profile(edges="[0, null, 100]"), "input_edges[1]: must be a finite number of tokens"),
    "text edge": (profile(edges="[0, ten, 100]"), "input_edges[1]: must be a finite number of tokens"),
    "edges not a list": (profile(edges="25"), "input_edges: must be a list of bucket edges"),
    "decreasing edges": (profile(edges="[0, 100, 25]"), "input_edges: needs at least two strictly increasing"),
    "undecodable bytes": (b"input_edges: [0, 25, 100]\n\xff\xfe model: x\n", "is not UTF-8 text"),
    "open_last not a flag": (profile() + "open_last_input: 'no'\n", "open_last_input: must be true or false"),
    "GPU entry not a mapping": ("input_edges: [0, 25, 100]\noutput_edges: [0, 25, 100]\ngpus:\n  A: [1, 2]\n",
                                "gpus.A: must be a mapping with keys cost and tputs"),
    "nameless list entry": ("input_edges: [0, 25, 100]\noutput_edges: [0, 25, 100]\ngpus:\n"
                            "  - {name: null, cost: 1, tputs: [[1, 1], [1, 1]]}\n", "has no usable `name`"),
    "not a file": (None, "is a folder, not a file"),
}


@pytest.mark.parametrize("case", PROFILE_CASES)
def test_bad_profile_yaml(tmp_path, capsys, case):
    content, message = PROFILE_CASES[case]
    gpus = write(tmp_path, "gpus.yaml", content) if content is not None else tmp_path
    wl = write(tmp_path, "w.csv", WORKLOAD)
    result = run_cli(["solve", "--workload", wl, "--gpus", gpus, "--rate", 4, "-o", "out/plan.json"], tmp_path, capsys)
    assert_one_line(*result, message)


# ---------------------------------------------------------------- melange-release JSON config

def config(**changes):
    doc = json.loads(json.dumps(CONFIG))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
    return json.dumps(doc)


CONFIG_CASES = {
    "duplicate GPU name": (config()[:-1].replace('"workload_distribution"', '"gpu_info": {"A": {"cost": 1, "tputs": [[1, 1], [1, 1]]}}, "workload_distribution"') + "}",
                           "has the key 'gpu_info' twice"),
    "duplicate GPU inside gpu_info": ('{"gpu_info": {"A": {"cost": 1.0, "tputs": [[1, 2], [3, 4]]}, "A": {"cost": 2.0, '
                                      '"tputs": [[2, 4], [6, 8]]}}, "workload_distribution": [[0.25, 0.25], [0.25, 0.25]], '
                                      '"total_request_rate": 4}', "has the key 'A' twice"),
    "NaN constant": (config().replace('"total_request_rate": 4', '"total_request_rate": NaN'), "holds NaN"),
    "boolean rate": (config(total_request_rate=True), "total_request_rate: must be a positive number"),
    "string rate": (config(total_request_rate="4"), "total_request_rate: must be a positive number"),
    "boolean share": (config(workload_distribution=[[True, 0], [0, 0]]), "workload_distribution[0][0]: must be a finite"),
    "null share": (config(workload_distribution=[[None, 0.5], [0.25, 0.25]]), "workload_distribution[0][0]: is empty"),
    "ragged shares": (config(workload_distribution=[[0.5, 0.25], [0.25]]), "has rows of different lengths"),
    "boolean throughput": (config(gpu_info__A__tputs=[[1, 2], [3, False]]), "gpu_info.A.tputs[1][1]: must be a finite"),
    "slice factor 1.5": (config(slice_factor=1.5), "slice_factor: must be a whole number >= 1"),
    "slice factor true": (config(slice_factor=True), "slice_factor: must be a whole number >= 1"),
    "huge number": (config().replace('"total_request_rate": 4', '"total_request_rate": 1e999'),
                    "total_request_rate: must be a positive number"),
    "undecodable bytes": (b'{"gpu_info": "\xff"}', "is not UTF-8 text"),
    "top level list": ("[1, 2]", "must be a JSON object"),
    "gpu spec is a list": (config(gpu_info__A=[1, 2]), "gpu_info.A: must be a mapping"),
    "deep nesting": ("[" * 100000 + "]" * 100000, "config"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_melange_config(tmp_path, capsys, case):
    content, message = CONFIG_CASES[case]
    cfg = write(tmp_path, "c.json", content)
    assert_one_line(*run_cli(["solve", "-c", cfg, "-o", "out/plan.json"], tmp_path, capsys), message)


# ---------------------------------------------------------------- workload CSV

WORKLOAD_CASES = {
    "duplicate row label": ("input_tokens,0-25,25-100\n0-25,0.25,0.25\n0-25,0.25,0.25\n", "does not start where"),
    "duplicate column label": ("input_tokens,0-25,0-25\n0-25,0.25,0.25\n25-100,0.25,0.25\n", "does not start where"),
    "text label": ("input_tokens,short,long\n0-25,0.25,0.25\n25-100,0.25,0.25\n", "label 'short' is not a bucket"),
    "empty bucket label": ("input_tokens,0-25,25-100\n0-25,0.25,0.25\n25-25,0.25,0.25\n", "bucket '25-25' is empty"),
    "text share": ("input_tokens,0-25,25-100\n0-25,0.25,x\n25-100,0.25,0.25\n", "has non-numeric shares"),
    "undecodable bytes": (b"input_tokens,0-25\n0-25,\xff\n", "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", WORKLOAD_CASES)
def test_bad_workload_csv(tmp_path, capsys, case):
    content, message = WORKLOAD_CASES[case]
    wl = write(tmp_path, "w.csv", content)
    gpus = write(tmp_path, "gpus.yaml", profile())
    assert_one_line(*run_cli(["solve", "--workload", wl, "--gpus", gpus, "--rate", 4, "-o", "out/p.json"],
                             tmp_path, capsys), message)


def test_bad_blend(tmp_path, capsys):
    wl = write(tmp_path, "w.csv", WORKLOAD)
    for argv, message in ((["--blend", "w.csv=0.5", "--blend", "w.csv=0.5"], "names w.csv twice"),
                          (["--blend", "w.csv=heavy"], "with a number as weight"),
                          (["--blend", "w.csv=nan"], "weights.w.csv: must be a number >= 0"),
                          (["--blend", "w.csv=0"], "positive sum")):
        assert_one_line(*run_cli(["workload", *argv, "-o", "mixed.csv"], tmp_path, capsys), message)
    assert wl.read_text() == WORKLOAD


# ---------------------------------------------------------------- solve options and output paths

SOLVE_CASES = {
    "time limit nan": (["--time-limit", "nan"], "time_limit: must be a positive number of seconds"),
    "time limit 0": (["--time-limit", "0"], "time_limit: must be a positive number of seconds"),
    "time limit -1": (["--time-limit", "-1"], "time_limit: must be a positive number of seconds"),
    "time limit inf": (["--time-limit", "inf"], "time_limit: must be a positive number of seconds"),
    "exact slice factor 0": (["--solver", "exact", "--slice-factor", "0"], "slice_factor: must be a whole number >= 1"),
    "rate nan": (["--rate", "nan"], "rate: must be a positive number"),
    "cap nan": (["--utilization-cap", "nan"], "utilization_cap: must be in (0, 1]"),
    "unknown option": (["--bogus"], "unrecognized arguments: --bogus"),
    "rate not a number": (["--rate", "four"], "argument --rate: invalid float value"),
}


@pytest.mark.parametrize("case", SOLVE_CASES)
def test_bad_solve_option(tmp_path, capsys, case):
    extra, message = SOLVE_CASES[case]
    argv = ["solve", "--workload", ARENA, "--gpus", GPUS, "--rate", 4, *extra, "-o", "out/plan.json"]
    assert_one_line(*run_cli(argv, tmp_path, capsys), message)


def test_output_paths_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    write(tmp_path, "afile", "keep me")
    base = ["solve", "--workload", ARENA, "--gpus", GPUS, "--rate", 4, "-o"]
    assert_one_line(*run_cli([*base, "folder"], tmp_path, capsys), "folder is a folder; give a file name")
    assert_one_line(*run_cli([*base, "afile/plan.json"], tmp_path, capsys), "afile is a file, so nothing can be written")
    assert_one_line(*run_cli(["workload", "--blend", f"{ARENA}=1", "-o", "x.json"], tmp_path, capsys),
                    "would be overwritten by its own .json sidecar")
    assert_one_line(*run_cli(["run", "-p", "params/default.yaml", "-o", "afile"], tmp_path, capsys),
                    "afile is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "keep me"
    if os.geteuid() != 0:             # root writes anywhere: the permission check cannot fail
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_one_line(*run_cli([*base, "locked/plan.json"], tmp_path, capsys), "permission denied")


def test_usage_errors_are_one_line_through_a_real_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "melange_nb.cli", "solve", "--rate", "x"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- chat datasets

def jsonl(tmp_path, name, rows):
    return write(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rows))


GOOD_TURN = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"}]
CHAT_CASES = {
    "no role": ([{"conversation": [{"content": "hi"}, {"content": "yo"}]}], "has no text role"),
    "text instead of content": ([{"conversation": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "yo"}]}],
                                "has no content (keys ['role', 'text'])"),
    "integer content": ([{"conversation": [{"role": "user", "content": 5}, {"role": "assistant", "content": 7}]}],
                        "row 1: conversation[0]: content must be text"),
    "conversation is a string": ([{"conversation": GOOD_TURN}, {"conversation": "hello"}],
                                 "row 2: conversation: is a string, not a list of messages"),
    "messages are strings": ([{"conversation": ["hi", "yo"]}], "must be a message {role, content}, got str"),
    "every conversation empty": ([{"conversation": []}, {"conversation": []}], "every conversation is empty"),
    "null conversations": ([{"conversation": None}], "every conversation is empty"),
    "no conversation column": ([{"chat": GOOD_TURN}], "no conversation column found"),
}


@pytest.mark.parametrize("case", CHAT_CASES)
def test_bad_chat_dataset(tmp_path, capsys, monkeypatch, case):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "cache-outputs"))
    rows, message = CHAT_CASES[case]
    jsonl(tmp_path, "chats.jsonl", rows)
    code, out, err, created = run_cli(["workload", "--dataset", "chats.jsonl", "-o", "w.csv"], tmp_path, capsys)
    created = [c for c in created if not c.startswith("cache-outputs")]   # the tokenizer cache may be built
    assert_one_line(code, out, err, created, message)


@pytest.mark.slow
def test_bad_rows_are_caught_before_the_tokenizer_pool(tmp_path):
    # DESIGN trap 13: an error inside datasets.map(num_proc=2) used to hang the parent forever. The timeout
    # is this test's subject (a hang must fail it, not stall the suite): the one wall-clock limit kept here.
    rows = [{"conversation": GOOD_TURN}] * 2100 + [{"conversation": [{"role": "user", "text": "x"}]}]
    jsonl(tmp_path, "big.jsonl", rows)
    env = {**os.environ, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    out = subprocess.run([sys.executable, "-m", "melange_nb.cli", "workload", "--dataset", "big.jsonl", "--num-proc", "2",
                          "-o", "w.csv"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "melange-nb: error: dataset row 2101: conversation[0]: has no content (keys ['role', 'text']); "
        "messages need role/content or from/value"], out.stderr
    assert not (tmp_path / "w.csv").exists()


def test_common_chat_variants_are_accepted(tmp_path, monkeypatch):
    from melange_nb.chats import chat_requests, load_tokenizer

    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    tok, _ = load_tokenizer()
    n = {t: len(tok.encode(t, add_special_tokens=False).ids) for t in ("hello there", "hi", "look\nat this")}
    # ShareGPT with role/content instead of from/value
    jsonl(tmp_path, "sharegpt.jsonl", [{"conversations": GOOD_TURN}])
    # OpenAI-style list content: the text parts, joined by newlines; image parts carry no tokens here
    jsonl(tmp_path, "openai.jsonl", [{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "u"}},
                                     {"type": "text", "text": "at this"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]}])
    requests, info = chat_requests(str(tmp_path / "sharegpt.jsonl"), num_proc=1)
    assert info["counts"]["schema"] == "sharegpt"
    assert requests[["input_tokens", "output_tokens"]].values.tolist() == [[n["hello there"], n["hi"]]]
    requests, info = chat_requests(str(tmp_path / "openai.jsonl"), num_proc=1)
    assert requests[["input_tokens", "output_tokens"]].values.tolist() == [[n["look\nat this"], n["hi"]]]


def test_trace_counts_beyond_int64_are_refused(tmp_path, capsys):
    write(tmp_path, "t.csv", "ContextTokens,GeneratedTokens\n10,20\n99999999999999999999999,5\n")
    assert_one_line(*run_cli(["workload", "--trace", "t.csv", "-o", "w.csv"], tmp_path, capsys),
                    "t.csv: ContextTokens: row 3 holds 99999999999999999999999; token counts must be whole numbers")


def test_offline_hub_fails_fast_in_one_line(tmp_path):
    # No network here: one line, and no half-minute of retries (HF_ENDPOINT points at a closed local port).
    env = {**os.environ, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HOME": str(tmp_path / "hf")}
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, "-m", "melange_nb.cli", "workload", "--dataset", "lmsys/lmsys-chat-1m",
                          "-o", "w.csv"], capture_output=True, text=True, cwd=tmp_path, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "could not reach the HuggingFace hub" in lines[0], out.stderr
    assert "Retrying" not in out.stderr and not (tmp_path / "w.csv").exists()


# ---------------------------------------------------------------- run params and absurd sizes

RUN_CASES = {
    "rate is a boolean": ("rate: true\n", "p.yaml: rate: must be a positive number of requests/s, got True"),
    "rate is NaN": ("rate: .nan\n", "p.yaml: rate: must be a positive number"),
    "slice factor 0": ("rate: 4\nslice_factor: 0\n", "p.yaml: slice_factor: must be a whole number >= 1"),
    "time limit 0": ("rate: 4\ntime_limit: 0\n", "p.yaml: time_limit: must be a positive number of seconds"),
    "unknown solver": ("rate: 4\nsolver: cplex\n", "p.yaml: solver: must be melange, exact"),
    "gpu_names a string": ("rate: 4\ngpu_names: A100\n", "p.yaml: gpu_names: must be a list of GPU names"),
    "constraints a list": ("rate: 4\nconstraints: [1]\n", "constraints: must be a mapping"),
    "run_name escapes": ("rate: 4\nrun_name: ../../x\n", "p.yaml: run_name: must be a plain name"),
    "duplicate key": ("rate: 4\nrate: 5\n", "duplicate key 'rate'"),
}


@pytest.mark.parametrize("case", RUN_CASES)
def test_bad_run_params_fail_before_any_kernel(tmp_path, capsys, case):
    text, message = RUN_CASES[case]
    write(tmp_path, "p.yaml", f"workload: {ARENA}\ngpus: {GPUS}\n" + text)
    assert_one_line(*run_cli(["run", "-p", "p.yaml", "-o", "runout"], tmp_path, capsys), message)


def test_a_missing_relative_path_is_reported_where_the_user_put_it(tmp_path, capsys, monkeypatch):
    """A relative path is looked up from the current folder, then the project root; one that is in neither
    is named from the current folder (not as if it were inside the project), with how it was looked up."""
    from melange_nb.config import PROJECT_ROOT
    from melange_nb.run import resolve_path

    here, lookup = tmp_path.resolve(), "check the path (relative paths are taken from the current folder, then the project root)"
    write(tmp_path, "p.yaml", f"workload: cl-rp-missing/w.csv\ngpus: {GPUS}\nrate: 4\n")
    for argv, message in [(["run", "-p", "p.yaml"], f"workload file {here}/cl-rp-missing/w.csv: not found; {lookup}, or pass a CSV"),
                          (["run", "-p", "gone.yaml"], f"params file {here}/gone.yaml: not found; {lookup}, e.g. params/default.yaml")]:
        code, out, err, created = run_cli(argv, tmp_path, capsys)
        assert_one_line(code, out, err, created, message)
        assert str(PROJECT_ROOT) not in err[0]
    # a command-line path is read as typed, from the current folder, and its message says just that
    code, out, err, created = run_cli(["solve", "--workload", "nowhere/w.csv", "--gpus", GPUS, "--rate", "4"],
                                      tmp_path, capsys)
    assert_one_line(code, out, err, created, "workload file nowhere/w.csv: not found; check the path (a relative "
                                             "path is taken from the current folder)")
    monkeypatch.chdir(tmp_path)
    assert resolve_path("params/gpus/llama2-7b-seed.yaml") == GPUS_DIR / "llama2-7b-seed.yaml"   # project files still found
    assert resolve_path("p.yaml") == here / "p.yaml" and resolve_path("gone/x.csv") == here / "gone" / "x.csv"


def test_absurd_sizes_are_bad_input_not_hangs(tmp_path, capsys):
    base = ["solve", "--workload", ARENA, "--gpus", GPUS]
    for extra, message in ((["--rate", "1e300"], "needs at least"),
                           (["--rate", "4", "--slice-factor", "100000"], "binary variables (over 100000)"),
                           (["--rate", "4", "--min-total", "99999999999999999999"], "min_total: is 99999999999999999999"),
                           (["--rate", "4", "--max-instances", "A100=1,A100=2"], "names A100 twice")):
        assert_one_line(*run_cli([*base, *extra, "-o", "p.json"], tmp_path, capsys), message)


def test_workload_options_are_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outs"))
    jsonl(tmp_path, "c.jsonl", [{"conversation": GOOD_TURN}])
    write(tmp_path, "t.csv", "ContextTokens,GeneratedTokens\nTrue,2\n")
    (tmp_path / "emptydir").mkdir()
    for argv, message in ((["--dataset", "synthetic:10", "--num-proc", "0"], "num_proc: must be a whole number >= 1"),
                          (["--dataset", "synthetic:10", "--max-conversations", "5", "--seed", "-1"], "seed: must be"),
                          (["--dataset", "c.jsonl", "--split", "test"], "has only the `train` split"),
                          (["--dataset", "emptydir"], "folder emptydir could not be read"),
                          (["--trace", "t.csv"], "t.csv: ContextTokens: holds true/false values")):
        code, out, err, created = run_cli(["workload", *argv, "-o", "w.csv"], tmp_path, capsys)
        assert_one_line(code, out, err, [c for c in created if not c.startswith("outs")], message)


def test_yaml_reads_exponents_as_numbers(tmp_path):
    from melange_nb.profiles import load_gpus

    gpus = load_gpus(write(tmp_path, "g.yaml", profile(cost="2e0", cell="1e1")))
    assert gpus["A"].cost == 2.0 and gpus["A"].tputs.iloc[1, 1] == 10.0


def test_plan_and_simulate_refuse_what_they_cannot_simulate_in_one_line(tmp_path, capsys, shared_data):
    """A trace whose requests share one timestamp, a plan that could have no GPU in any window (here: only
    L4, which serves no bucket at TPOT 40 ms), and a target of 0: one line each, nothing written."""
    predicted = str(GPUS_DIR / "llama3.1-8b-tpot40.yaml")
    trace = str(shared_data / "azure_llm_inference_conv_2023.csv")
    write(tmp_path, "same.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,100,20\n"
                                "2023-11-16 18:15:46,200,30\n")
    cases = [(["plan", "--trace", "same.csv", "--gpus", GPUS, "-o", "out"], "every request has the same timestamp"),
             (["plan", "--trace", trace, "--gpus", predicted, "--gpu", "L4", "--target-attainment", "0.99", "-o", "out"],
              "--gpu: none of L4 serves any bucket"),
             (["plan", "--trace", trace, "--gpus", predicted, "--gpu", "L4", "--simulate", "-o", "out"],
              "--gpu: none of L4 serves any bucket"),
             (["simulate", "--trace", trace, "--gpus", predicted, "--target-attainment", "0"],
              "--target-attainment: must be a share of requests in (0, 1]")]
    for argv, message in cases:           # a plan's folder is never made; its emptied lock file may lie beside
        code, out, err, created = run_cli(argv, tmp_path, capsys)
        assert_one_line(code, out, err, [c for c in created if c != ".out.lock"], message)
    # quotas that leave every window without a plan are found only once the windows are solved: one line,
    # and no plan folder (only the emptied lock file beside it)
    code, out, err, created = run_cli(["plan", "--trace", trace, "--gpus", predicted, "--gpu", "H100",
                                       "--max-instances", "H100=0", "--simulate", "-o", "out"], tmp_path, capsys)
    assert code == 2 and len(err) == 1 and "--simulate: no window has a plan with a GPU" in err[0], err
    assert created in ([], [".out.lock"]) and not (tmp_path / "out").exists()
