"""The ``melange-nb`` command: merges options and calls the library (after papermill's cli.py).

Bad input prints one line ``melange-nb: error: <field>: <what to fix>`` on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from .errors import InputError, MelangeError, SweepInterrupted
from .workload import DEFAULT_EDGES

FILE_SCHEMAS = ("gpus", "prices", "run", "sweep")     # `melange-nb schema KIND` (schemas.FILE_MODELS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message):
        self.exit(2, f"melange-nb: error: {message} (see {self.prog} --help)\n")


def _add_constraint_options(p, *, lead: str = "", per: str = "", min_note: str = "",
                            spec_defaults: bool = False) -> None:
    """--time-limit and the constraint options, worded alike wherever a mix is solved (solve, plan, sweep).

    `spec_defaults`: leave the cap and the total unset (None), so a sweep spec's own values stand.
    """
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help=f"{lead}stop the mix solver after this many seconds{per}; status time_limit (default: no limit)")
    p.add_argument("--max-instances", default="", metavar="NAME=N[,NAME=N]",
                   help=f"{lead}quota per GPU type, e.g. A100=2,A10G=8 (default: none)")
    p.add_argument("--min-instances", default="", metavar="NAME=N[,NAME=N]",
                   help=f"{lead}minimum per GPU type{min_note}, e.g. A10G=1 (default: none)")
    p.add_argument("--utilization-cap", type=float, default=None if spec_defaults else 1.0, metavar="FRACTION",
                   help=f"{lead}plan at most this fraction of profiled max throughput, in (0, 1] (default: 1.0)")
    p.add_argument("--min-total", type=int, default=None if spec_defaults else 0, metavar="N",
                   help=f"{lead}at least this many GPUs in all, e.g. for N+1 redundancy (default: 0)")


def _add_ray_address(p, what: str) -> None:
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help=f"Ray cluster for {what}: the head's address from `ray start --head` (default: RAY_ADDRESS, "
                        "else a local Ray started for the run)")


def _add_ray_tasks(p, what: str) -> None:
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help=f"simulate {what} as Ray tasks on this cluster (the head's address from `ray start --head`; "
                        "the `scale` extra); same results (default: here, no Ray)")


def _add_stream_options(p, *, what: str = "the simulated stream") -> None:
    """--duration, --arrival, --seed, --routing, --slo: a generated request stream and how a simulation serves it."""
    p.add_argument("--duration", type=float, default=600.0, metavar="SECONDS",
                   help=f"length of {what} in seconds (default: 600)")
    p.add_argument("--arrival", default="poisson", metavar="poisson|gamma:CV|constant",
                   help="inter-arrival times: poisson, gamma:CV (bursty for CV > 1, e.g. gamma:2) or constant "
                        "(default: poisson)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the stream and of the routing draws (default: 0)")
    p.add_argument("--routing", default="least", choices=["least", "round-robin"],
                   help="replica choice within a GPU type: least outstanding requests or round-robin (default: least)")
    p.add_argument("--slo", action="append", metavar="[STAT_]METRIC_ms=N",
                   help="SLO each request must meet, e.g. tpot_ms=40 (repeatable; default: the profile file's slo)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="melange-nb", description="Cheapest mix of GPU types for an LLM workload.",
                     epilog="Each command has its own help: melange-nb COMMAND --help.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("solve", help="solve one allocation: a one-line answer on a terminal, JSON for scripts")
    s.add_argument("-c", "--config", metavar="JSON",
                   help="melange-release config file (gpu_info, workload_distribution, total_request_rate, slice_factor); "
                        "required unless --workload and --gpus are given")
    s.add_argument("--workload", metavar="CSV", help="workload CSV of shares, rows = input buckets, columns = output buckets (required without -c)")
    s.add_argument("--gpus", metavar="YAML", help="GPU profile file, e.g. params/gpus/llama2-7b-seed.yaml (required without -c)")
    s.add_argument("--gpu", action="append", default=[], metavar="NAME",
                   help="use only this GPU type (repeatable; default: every type in the profile)")
    s.add_argument("--rate", type=float, metavar="REQ_PER_S",
                   help="total request rate in requests/s (required with --workload; default with -c: the config's)")
    s.add_argument("--slice-factor", type=int, metavar="N",
                   help="Mélange ILP slices per bucket, a whole number >= 1 (default: the config's, else 1)")
    s.add_argument("--solver", default="exact", choices=["exact", "melange"],
                   help="mix solver: exact (continuous split, HiGHS; never dearer) or melange (the paper's ILP, CBC, "
                        "for faithful reproduction); the other one is solved too, as the comparison (default: exact)")
    _add_constraint_options(s)
    s.add_argument("--format", choices=["text", "json", "melange"],
                   help="text: one line with the mix, $/h and savings against each single GPU type; json: solver, "
                        "status, allocation, every policy, routing, savings; melange: melange-release's result "
                        "(default: text on a terminal, json when piped or redirected)")
    s.add_argument("-o", "--output", metavar="FILE",
                   help="also write the result to this file: JSON, or melange-release's format with --format melange "
                        "(default: print only)")
    s.add_argument("--export", metavar="DIR", help="also write deployment files for this plan into DIR "
                                                   "(skyserve-<gpu>.yaml per GPU type, deploy.json; default: none)")
    s.add_argument("--target-attainment", type=float, metavar="FRACTION",
                   help="also find the cheapest plan whose simulated SLO attainment reaches this share, e.g. 0.99 "
                        "(needs a latency model per GPU type; default: throughput only)")
    _add_stream_options(s, what="the stream simulated with --target-attainment")
    _add_ray_tasks(s, "each --target-attainment search step's candidate plans")

    w = sub.add_parser("workload", help="build a request-size histogram from a chat dataset or a length trace")
    src = w.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME|PATH|synthetic[:N]",
                     help="HuggingFace dataset name (e.g. lmsys/lmsys-chat-1m), a local file or folder, or "
                          "synthetic[:N] (N offline synthetic conversations made here, default 3000); "
                          "one of --dataset, --trace, --blend is required")
    src.add_argument("--trace", metavar="CSV|PARQUET", help="length trace: one row per request with token counts (one of --dataset, --trace, --blend is required)")
    src.add_argument("--blend", action="append", metavar="CSV=WEIGHT",
                     help="mix workload CSVs by weight (repeatable), e.g. --blend chat.csv=0.8 --blend docs.csv=0.2 "
                          "(one of --dataset, --trace, --blend is required)")
    w.add_argument("--input-column", default="ContextTokens", metavar="NAME",
                   help="trace column with input tokens (default: ContextTokens)")
    w.add_argument("--output-column", default="GeneratedTokens", metavar="NAME",
                   help="trace column with output tokens (default: GeneratedTokens)")
    w.add_argument("--tokenizer", default="mistral-v1", metavar="NAME|PATH",
                   help="HuggingFace tokenizer name or folder (default: mistral-v1, offline, shipped in mistral-common)")
    w.add_argument("--split", default="train", metavar="NAME", help="dataset split (default: train)")
    w.add_argument("--revision", metavar="REV",
                   help="dataset revision on the hub: branch, tag or commit (default: the latest)")
    w.add_argument("--streaming", action="store_true",
                   help="stream the dataset from the hub instead of downloading it (default: download)")
    w.add_argument("--schema", choices=["lmsys", "sharegpt", "openai"],
                   help="conversation format (default: detected from the column names)")
    w.add_argument("--max-conversations", type=int, metavar="N",
                   help="use only N conversations: the first N, or a random N with --seed (default: all)")
    w.add_argument("--seed", type=int, metavar="S",
                   help="sample --max-conversations at random with this seed (default: take the first N)")
    w.add_argument("--language", metavar="NAME",
                   help="keep conversations whose `language` column equals this, e.g. English (default: all)")
    w.add_argument("--turn-policy", default="every", choices=["every", "first"],
                   help="every: one request per answered user turn; first: only each conversation's first "
                        "(default: every)")
    w.add_argument("--special-tokens", action="store_true",
                   help="count one BOS token per message, as the seed did (default: content tokens only)")
    w.add_argument("--chat-template", action="store_true",
                   help="count each prompt as the server sees it: rendered by the model's chat template, inputs only "
                        "(default: no template)")
    w.add_argument("--num-proc", type=int, metavar="N",
                   help="tokenizer processes (default: all cores; with --engine ray: tokenizer workers, default one per cluster CPU)")
    w.add_argument("--engine", default="datasets", choices=["datasets", "ray"],
                   help="datasets: datasets.map on this machine; ray: tokenize and count on a Ray cluster (the `scale` "
                        "extra; Parquet/JSONL files, hub datasets, synthetic) (default: datasets)")
    _add_ray_address(w, "--engine ray")
    w.add_argument("--edges", default=",".join(map(str, DEFAULT_EDGES)), metavar="E0,E1,...",
                   help=f"input bucket edges in tokens, increasing (default: {','.join(map(str, DEFAULT_EDGES))})")
    w.add_argument("--output-edges", metavar="E0,E1,...", help="output bucket edges in tokens (default: --edges)")
    w.add_argument("--overflow", default="drop", choices=["drop", "clip", "open"],
                   help="requests beyond the last edge: drop them (counted and reported), clip them into the last "
                        "bucket, or add an open last bucket (default: drop)")
    w.add_argument("-o", "--output", required=True, metavar="CSV", help="workload CSV to write, plus a .json sidecar with its provenance (required)")

    sw = sub.add_parser("sweep", help="solve a grid of rates x workloads x GPU sets x SLOs; reports where the mix changes")
    sw.add_argument("-p", "--params", metavar="YAML", help="sweep spec, e.g. params/sweeps/demo.yaml (required unless the quick form's --workload, --gpus, --rates)")
    sw.add_argument("--workload", metavar="CSV", help="quick form: one workload CSV (required without -p)")
    sw.add_argument("--gpus", metavar="YAML", help="quick form: one GPU profile file (required without -p)")
    sw.add_argument("--rates", metavar="R1,R2,...", help="quick form: request rates in requests/s, e.g. 1,2,4,8 (required without -p)")
    sw.add_argument("--solver", action="append", choices=["melange", "exact"],
                    help="quick form: mix solver (repeatable; the first is the reference; default: exact, then melange "
                         "as its comparison)")
    sw.add_argument("--gpu", action="append", default=[], metavar="NAME",
                    help="quick form: use only this GPU type (repeatable; default: every type in the profile)")
    sw.add_argument("--slice-factor", type=int, metavar="N", help="quick form: Mélange ILP slices per bucket (default: 1)")
    _add_constraint_options(sw, lead="quick form: ", per=" per point", spec_defaults=True)
    sw.add_argument("--render", metavar="changes|all|none|R1,R2,...",
                    help="per-point reports: changes (rates where the mix changes, plus the first and last), all, "
                         "none, or comma-separated rates (default: changes)")
    sw.add_argument("-o", "--output-dir", metavar="DIR",
                    help="sweep folder; a re-run resumes it (default: outputs/<spec name>; the quick form needs it)")
    sw.add_argument("-j", "--workers", type=int, metavar="N", help="points run in parallel (default: all cores)")
    sw.add_argument("--retry-failed", action="store_true", help="re-run points that failed before (default: keep them)")
    sw.add_argument("--ray-address", metavar="HOST:PORT",
                    help="solve the points as Ray tasks on this cluster (`ray start --head` prints it; the `scale` "
                         "extra); rendering stays here (default: the spec's `ray`, else the local pool)")

    _plan_parser(sub)

    sc = sub.add_parser("schema", help="print the JSON Schema of an input file kind, for editors "
                                       "(# yaml-language-server: $schema=FILE)")
    sc.add_argument("kind", choices=sorted(FILE_SCHEMAS), help="sweep: params/sweeps/*.yaml; gpus: params/gpus/*.yaml; "
                                                                 "prices: params/prices/*.yaml; run: params/*.yaml")

    _simulate_parser(sub)
    _eval_parser(sub)

    pr = sub.add_parser("profile", help="GPU profiles: predict (aiconfigurator), import measured runs, plan "
                                        "benchmarks, compare two profile files")
    psub = pr.add_subparsers(dest="profile_command", required=True)
    pp = psub.add_parser("predict", help="predict a profile per GPU system with aiconfigurator-core (offline)")
    pp.add_argument("--model", required=True, help="bundled HF id (e.g. meta-llama/Meta-Llama-3.1-8B) or a folder with config.json")
    pp.add_argument("--gpu", action="append", required=True, metavar="SYSTEM[=NAME]",
                    help="aiconfigurator system, e.g. h100_sxm=H100 (repeatable)")
    pp.add_argument("--backend", action="append", metavar="BACKEND|NAME=BACKEND",
                    help="vllm | sglang | trtllm | auto (the one whose kernel-data versions agree best across the "
                         "GPUs); NAME=BACKEND for one GPU (repeatable); default vllm")
    pp.add_argument("--slo", action="append", required=True, metavar="[STAT_]METRIC_ms=N",
                    help="e.g. tpot_ms=40, p99_ttft_ms=2000 (repeatable: all must hold)")
    pp.add_argument("--edges", help="input bucket edges (default 0,25,100,250,500,1000,2000,4000,8000,16000)")
    pp.add_argument("--output-edges", help="output bucket edges (default 0,25,100,250,500,1000,2000)")
    pp.add_argument("--open-last-input", action="store_true", help="one more open-ended input bucket past the last edge")
    pp.add_argument("--open-last-output", action="store_true", help="one more open-ended output bucket")
    pp.add_argument("--prices", action="append", help="price file(s) (default params/prices/runpod-serverless.yaml)")
    pp.add_argument("--tp", type=int, default=1, help="GPUs per replica (tensor parallel), default 1")
    pp.add_argument("--sol", default="label", choices=["label", "calibrate"],
                    help="GPUs without measured data: label the speed-of-light estimate, or scale it by a sibling GPU")
    pp.add_argument("--no-cache", action="store_true", help="ignore outputs/cache/profiles/")
    pp.add_argument("--latency", action="store_true",
                    help="also fit a latency model per GPU type (as `profile latency` does), so `simulate` and "
                         "--target-attainment can use the file (default: rates only)")
    pp.add_argument("-o", "--output", required=True, help="profile YAML to write (e.g. params/gpus/NAME.yaml)")
    pk = psub.add_parser("check", help="self-consistency: per bucket, the simulated max rate of one replica under its "
                                       "latency model against the profile's rate")
    pk.add_argument("profile", metavar="YAML", help="profile file with latency models")
    pk.add_argument("--gpu", action="append", default=[], metavar="NAME", help="check only this GPU type (repeatable)")
    pk.add_argument("--requests", type=int, default=300, metavar="N",
                    help="requests simulated per rate tried (default: 300)")
    pk.add_argument("--arrival", default="constant", metavar="constant|poisson|gamma:CV",
                    help="arrivals of the simulated streams (default: constant, as the profiles' steady state)")
    pk.add_argument("-o", "--output", metavar="CSV", help="also write the table (gpu, bucket, rates, ratio) here")
    pl = psub.add_parser("latency", help="add a latency model to each GPU of a predicted profile file, fitted to its "
                                         "rates and aiconfigurator-core's replica facts")
    pl.add_argument("profile", metavar="YAML", help="predicted profile file (profile predict)")
    pl.add_argument("--refine", type=int, default=1, metavar="N",
                    help="simulation-based refinements of the fit (default: 1)")
    pl.add_argument("-o", "--output", required=True, metavar="YAML", help="profile file to write (may be the input)")
    pc = psub.add_parser("compare", help="per-bucket ratio A/B for the GPUs two profile files share (e.g. predicted/measured)")
    pc.add_argument("a", help="profile YAML, e.g. a prediction")
    pc.add_argument("b", help="profile YAML, e.g. a measurement")
    pc.add_argument("--gpu", action="append", metavar="NAME_A[=NAME_B]",
                    help="pair GPUs whose names differ, e.g. A100-80GB=A100 (default: same names)")
    _measured_parsers(psub)

    r = sub.add_parser("run", help="execute the allocation notebook for a params file into outputs/<run>/")
    r.add_argument("-p", "--params", default="params/default.yaml", metavar="YAML",
                   help="run parameters: workload, gpus, rate, solver, ... (default: params/default.yaml)")
    r.add_argument("-o", "--output-dir", metavar="DIR",
                   help="run folder, must not exist yet (default: outputs/<run_name>-<UTC timestamp>)")
    r.add_argument("--with-code", action="store_true",
                   help="also render the with-code HTML page of each notebook (default: only the shared page)")
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("melange-nb")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _measured_parsers(verbs) -> None:
    """`profile import` and `profile plan`: measured profiles from benchmark runs, and the runs to make."""
    from .profiles import PROFILE_INPUT_EDGES, PROFILE_OUTPUT_EDGES

    pi = verbs.add_parser("import", help="a measured profile from vllm bench serve / AIPerf result files")
    pi.add_argument("results", nargs="+", help="result JSON files (vllm bench serve --save-result, "
                                               "AIPerf profile_export_aiperf.json)")
    pi.add_argument("--gpu", required=True, help="GPU type name in the profile file, e.g. L4")
    price = pi.add_mutually_exclusive_group(required=True)
    price.add_argument("--cost", type=float, help="$/hour of one replica")
    price.add_argument("--prices", help="price file (params/prices/*.yaml) that prices --gpu (or --system)")
    pi.add_argument("--slo", action="append", required=True,
                    help="SLO condition, e.g. tpot_ms=40 (mean) or p99_ttft_ms=2000; repeatable, all must hold")
    pi.add_argument("--edges", default=",".join(map(str, PROFILE_INPUT_EDGES)), help="input bucket edges")
    pi.add_argument("--output-edges", default=",".join(map(str, PROFILE_OUTPUT_EDGES)), help="output bucket edges")
    pi.add_argument("--system", help="hardware id, e.g. l4 or h100_sxm (provenance; price lookup)")
    pi.add_argument("--gpus-per-replica", type=int, help="tensor-parallel size: GPUs in one replica")
    pi.add_argument("--engine", help="serving engine and version, e.g. vllm=0.11.0")
    pi.add_argument("--fill", choices=["predicted", "calibrated"],
                    help="buckets without runs: the --prediction's rate, or it corrected by a fit on the measured buckets")
    pi.add_argument("--prediction", help="predicted profile YAML (profile predict) with the same edges, for --fill")
    pi.add_argument("--prediction-gpu", help="GPU name in --prediction (default: --gpu, or its only GPU)")
    pi.add_argument("--add", action="store_true", help="add this GPU to the existing -o file (same edges)")
    pi.add_argument("--kv-tokens", type=int, metavar="N",
                    help="KV-cache capacity of one replica in tokens (vLLM logs it at start: 'GPU KV cache size'); "
                         "given, a latency model is fitted to the runs' TPOT/TTFT at their achieved concurrency "
                         "(default: no latency model)")
    pi.add_argument("--max-seqs", type=int, default=256, metavar="N",
                    help="the server's max sequences per batch, for the latency model (default: 256, vLLM's max_num_seqs)")
    pi.add_argument("--max-step-tokens", type=int, default=8192, metavar="N",
                    help="the server's token budget per step, for the latency model (default: 8192, vLLM's "
                         "max_num_batched_tokens)")
    pi.add_argument("-o", "--output", required=True, help="profile YAML to write (what solve --gpus reads)")

    pp = verbs.add_parser("plan", help="write the vllm bench serve commands that measure one GPU")
    pp.add_argument("--gpu", required=True, help="GPU type name (for the file names and the import command)")
    pp.add_argument("--model", required=True, help="model name as the server knows it")
    pp.add_argument("--base-url", required=True, help="server URL, e.g. http://127.0.0.1:8000")
    pp.add_argument("--tokenizer", help="tokenizer for vllm bench serve (default: the model's)")
    pp.add_argument("--edges", default=",".join(map(str, PROFILE_INPUT_EDGES)), help="input bucket edges")
    pp.add_argument("--output-edges", default=",".join(map(str, PROFILE_OUTPUT_EDGES)), help="output bucket edges")
    pp.add_argument("--rates", default="1,2,4,8,16,32", help="request rates to run per bucket, requests/s")
    pp.add_argument("--num-prompts", type=int, default=200, help="requests per run")
    pp.add_argument("--slo", default="tpot_ms=40", help="SLO written into the follow-up import command")
    pp.add_argument("-o", "--output-dir", required=True, help="folder for run_benchmarks.sh and README.md")


def _add_plan_stream_options(si, *, verb: str = "simulate") -> None:
    """The plan and the request stream, worded alike for simulate and eval plan (the same stream, the same plan)."""
    si.add_argument("--gpus", required=True, metavar="YAML",
                    help="GPU profile file with a latency model per GPU type (required)")
    si.add_argument("--gpu", action="append", default=[], metavar="NAME",
                    help="solve with only this GPU type (repeatable; default: every type in the profile)")
    si.add_argument("--workload", metavar="CSV", help="workload CSV: request sizes of the generated stream, and what "
                                                      "a plan is solved or routed on (required without --trace)")
    si.add_argument("--rate", type=float, metavar="REQ_PER_S", help="mean request rate (required with --workload)")
    si.add_argument("--trace", metavar="CSV|PARQUET",
                    help="replay this timestamped trace at its own arrival times instead of a generated stream "
                         "(default: a stream generated from --workload at --rate)")
    si.add_argument("--timestamp-column", default="TIMESTAMP", metavar="NAME", help="trace column (default: TIMESTAMP)")
    si.add_argument("--input-column", default="ContextTokens", metavar="NAME", help="trace column (default: ContextTokens)")
    si.add_argument("--output-column", default="GeneratedTokens", metavar="NAME",
                    help="trace column (default: GeneratedTokens)")
    plan = si.add_mutually_exclusive_group()
    plan.add_argument("--counts", metavar="NAME=N[,NAME=N]",
                      help=f"{verb} these GPU counts, routed to balance utilisation, e.g. A10G=1,A100=1 "
                           "(default: solve on the spot)")
    plan.add_argument("--plan", metavar="JSON|DIR",
                      help=f"{verb} a saved plan: a solve -o result or allocation.json, a deploy.json, or a "
                           "`melange-nb plan` output folder (per-window plans) (default: solve on the spot)")
    si.add_argument("--solver", default="exact", choices=["exact", "melange"],
                    help="solver for the plan solved on the spot (default: exact)")
    si.add_argument("--sizes", default="uniform", choices=["uniform", "midpoint"],
                    help="sizes within a bucket of a generated stream: uniform from lo to hi-1, or the midpoint "
                         "(default: uniform)")
    _add_stream_options(si)


def _simulate_parser(sub) -> None:
    si = sub.add_parser("simulate", help="simulate a plan serving a request stream: SLO attainment and tail latencies")
    _add_plan_stream_options(si)
    si.add_argument("--target-attainment", type=float, metavar="FRACTION",
                    help="also search the cheapest plan whose attainment on this stream reaches this share, e.g. 0.99, "
                         "from the throughput-only plan (default: simulate the one plan)")
    si.add_argument("--format", choices=["text", "json"],
                    help="text: the answer and a table per GPU type; json: status, summary rows (default: text on a "
                         "terminal, json when piped)")
    si.add_argument("-o", "--output-dir", metavar="DIR",
                    help="also write requests.parquet, summary.csv, queue.csv, summary.json into DIR (default: none)")
    _add_ray_tasks(si, "each GPU type's pool and, with --target-attainment, each search step's candidate plans")


@contextlib.contextmanager
def _stream_options_named():
    """A generated stream's bad value named by its command-line option (--rate, not rate)."""
    try:
        yield
    except InputError as exc:
        if exc.field in ("rate", "duration", "arrival", "sizes", "seed"):
            raise InputError(f"--{exc.field}", exc.message) from None
        raise


def _plan_and_stream(args):
    """(gpus, stream, plan, workload) from the options of `_add_plan_stream_options`."""
    from .profiles import load_gpus, select_gpus
    from .simulate import load_plan, stream_from_trace, stream_from_workload
    from .workload import read_workload

    gpus = load_gpus(args.gpus)
    solve_gpus = select_gpus(gpus, args.gpu)
    workload = read_workload(args.workload) if args.workload else None
    if args.trace:
        stream = stream_from_trace(args.trace, gpus, timestamp_column=args.timestamp_column,
                                   input_column=args.input_column, output_column=args.output_column)
        if workload is None:
            from .simulate import stream_workload
            workload = stream_workload(stream, gpus)
        rate = args.rate if args.rate is not None else len(stream) / stream.attrs["duration_s"]
    else:
        if workload is None or args.rate is None:
            raise InputError("--workload/--rate", "both are required without --trace (requests/s)")
        rate = args.rate
        with _stream_options_named():
            stream = stream_from_workload(workload, rate, args.duration, arrival=args.arrival, seed=args.seed,
                                          sizes=args.sizes)
    plan = None
    if getattr(args, "target_attainment", None) is None:
        plan = load_plan(args.counts or args.plan, solve_gpus if not (args.counts or args.plan) else gpus,
                         workload=workload, rate=rate, solver=args.solver)
    return gpus, stream, plan, workload, solve_gpus, rate


def _ray_option(value):
    """--ray-address checked before anything runs: its form, that Ray (the `scale` extra) is installed
    and that a Ray head answers there (seconds, where `ray.init` would retry for minutes)."""
    from .scale import check_address, check_reachable, require_ray

    ray = check_address(value)
    if ray:
        require_ray()
        if isinstance(ray, str):
            check_reachable(ray)
    return ray


def _check_target(value) -> None:
    """--target-attainment's value, before anything is read or solved."""
    if value is not None:
        from . import schemas
        schemas.number(value, "--target-attainment", positive=True, maximum=1.0,
                       what="a share of requests in (0, 1], e.g. 0.99")


def _simulate(args) -> int:
    from .simulate import simulate, write_result

    if args.output_dir:
        from .files import check_output_dir
        check_output_dir(args.output_dir, "-o/--output-dir")
    if args.target_attainment is not None and (args.counts or args.plan):
        raise InputError("--target-attainment", "searches from the throughput-only plan; drop --counts/--plan")
    _check_target(args.target_attainment)        # before the stream is read or a plan solved
    ray = _ray_option(args.ray_address)
    gpus, stream, plan, workload, solve_gpus, rate = _plan_and_stream(args)
    from .simulate import check_latency, serving
    if plan is not None:                  # before a cluster is reached or anything simulated
        check_latency(gpus, [g for g in plan.gpus if g in gpus], " in the plan")
    else:
        check_latency(solve_gpus, serving(solve_gpus))
    search = None
    from .pools import session

    with session(ray):
        if args.target_attainment is not None:
            from .simulate import search_attainment
            search = search_attainment(workload, solve_gpus, rate, args.target_attainment, stream=stream,
                                       solver=args.solver, routing=args.routing, seed=args.seed, slo=args.slo,
                                       progress=sys.stderr.isatty(), ray=ray)
            if search.status == "infeasible":
                raise InputError("--target-attainment", search.message)
            result = search.result
        else:
            result = simulate(stream, plan, gpus, routing=args.routing, seed=args.seed, slo=args.slo,
                              progress=sys.stderr.isatty(), ray=ray)
    paths = write_result(result, args.output_dir) if args.output_dir else []
    if search is not None and args.output_dir:
        from .files import write_json
        paths.append(write_json(Path(args.output_dir) / "attainment.json", search.to_dict()))
    fmt = args.format or ("text" if sys.stdout.isatty() else "json")
    if fmt == "json":
        print(json.dumps({**result.to_dict(), **({"attainment": search.to_dict()} if search else {})}, indent=2))
    else:
        from .simulate import summary_table
        if search is not None:
            print(search.message + ".")
            if search.neighbours:
                print("Removing one GPU: " + "; ".join(f"one {n['removed']} less: {n['attainment']:.1%}"
                                                         for n in search.neighbours) + ".")
        print(result.message + ".")
        if result.status == "ok":
            print(summary_table(result).to_string())
        if paths:
            print("wrote " + ", ".join(str(p) for p in paths))
    if search is not None:
        return 0 if search.status == "met" else 1
    return 0 if result.status == "ok" else 1


def _eval_parser(sub) -> None:
    ev = sub.add_parser("eval", help="confirm a plan on real servers: per-pool AIPerf load tests out, measured "
                                     "attainment back in beside the simulation")
    verbs = ev.add_subparsers(dest="eval_command", required=True, metavar="VERB")
    ep = verbs.add_parser("plan", help="split simulate's request stream into one AIPerf trace per GPU pool, with "
                                       "the commands, a resumable run_eval.sh and a README")
    _add_plan_stream_options(ep, verb="load-test")
    ep.add_argument("--endpoint", action="append", default=[], required=True, metavar="GPU=URL",
                    help="base URL of the servers of one GPU type, e.g. A10G=http://10.0.0.5:8000 (one per GPU type "
                         "of the plan; required)")
    ep.add_argument("--model", required=True, metavar="NAME",
                    help="model name the servers serve, sent in every request (required)")
    ep.add_argument("--tokenizer", metavar="NAME|DIR",
                    help="tokenizer AIPerf makes prompts with: a Hugging Face id or a local folder (default: --model)")
    ep.add_argument("--endpoint-type", default="completions", choices=["completions", "chat"],
                    help="OpenAI API the servers are driven through; completions keeps prompt lengths exact "
                         "(default: completions)")
    ep.add_argument("--aiperf-args", default="", metavar="'ARGS'",
                    help="more AIPerf options for every pool, as one quoted string, e.g. "
                         "--aiperf-args='--request-timeout-seconds 900' (default: none)")
    ep.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="new folder for the eval (required)")
    ei = verbs.add_parser("import", help="read each pool's AIPerf records: measured attainment and tail latencies "
                                         "beside the simulation, a table and report.html")
    ei.add_argument("eval_dir", metavar="DIR", help="a folder written by eval plan, after its run_eval.sh")
    ei.add_argument("--format", choices=["text", "json"],
                    help="text: the answer and the table; json: the summary (default: text on a terminal, json "
                         "when piped)")


def _eval(args) -> int:
    from . import evaluate

    if args.eval_command == "import":
        result = evaluate.import_eval(args.eval_dir)
        paths = evaluate.write_import(result)
        fmt = args.format or ("text" if sys.stdout.isatty() else "json")
        if fmt == "json":
            print((Path(args.eval_dir) / "summary.json").read_text(), end="")
        else:
            print(result.headline)
            print(evaluate.text_table(result))
            print("wrote " + ", ".join(str(p) for p in paths))
        return 0
    import shlex

    evaluate.check_options(args.output_dir, args.model, args.endpoint_type)
    endpoints = evaluate.parse_endpoints(args.endpoint)
    try:
        extra = shlex.split(args.aiperf_args)
    except ValueError as exc:
        raise InputError("--aiperf-args", f"cannot be split into options ({exc})") from exc
    gpus, stream, plan, workload = _plan_and_stream(args)[:4]
    evaluate.plan_eval(args.output_dir, stream, plan, gpus, endpoints=endpoints, model=args.model, workload=workload,
                       tokenizer=args.tokenizer, seed=args.seed, routing=args.routing, slo=args.slo,
                       endpoint_type=args.endpoint_type, aiperf_args=extra, progress=sys.stderr.isatty())
    print(evaluate.plan_summary(args.output_dir))
    return 0


def _plan_parser(sub) -> None:
    pl = sub.add_parser("plan", help="a GPU mix per time window of a timestamped trace, against static peak provisioning")
    pl.add_argument("--trace", required=True, metavar="CSV|PARQUET",
                    help="one row per request with a timestamp and token counts (required)")
    pl.add_argument("--timestamp-column", default="TIMESTAMP", metavar="NAME",
                    help="trace column with request times (default: TIMESTAMP)")
    pl.add_argument("--input-column", default="ContextTokens", metavar="NAME",
                    help="trace column with input tokens (default: ContextTokens)")
    pl.add_argument("--output-column", default="GeneratedTokens", metavar="NAME",
                    help="trace column with output tokens (default: GeneratedTokens)")
    pl.add_argument("--window", default="5min", metavar="LENGTH",
                    help="window length: a number and a unit, e.g. 5min, 300s, 1h (default: 5min)")
    pl.add_argument("--gpus", required=True, metavar="YAML",
                    help="GPU profile file (params/gpus/*.yaml); its edges bucket the trace (required)")
    pl.add_argument("--gpu", action="append", default=[], metavar="NAME",
                    help="use only this GPU type (repeatable; default: every type in the profile)")
    pl.add_argument("--solver", default="exact", choices=["exact", "melange"],
                    help="mix solver per window (default: exact)")
    pl.add_argument("--slice-factor", type=int, default=1, metavar="N",
                    help="Mélange ILP slices per bucket (default: 1)")
    _add_constraint_options(pl, per=" per window", min_note=", also in empty windows")
    pl.add_argument("--overflow", default="drop", choices=["drop", "clip", "open"],
                    help="requests beyond the profile's last edge: drop (counted), clip to the last bucket, open "
                         "(default: drop)")
    pl.add_argument("--smooth", metavar="hold:N|calm:N",
                    help="hold:N (change the mix at most every N windows) or calm:N (scale a type down only after N "
                         "calm windows) (default: none, each window on its own)")
    pl.add_argument("-j", "--workers", type=int, default=1, metavar="N",
                    help="solve windows in this many processes (default: 1)")
    pl.add_argument("--ray-address", metavar="HOST:PORT",
                    help="solve the windows, and with --simulate each GPU type's pool, as Ray tasks on this cluster "
                         "(the head's address from `ray start --head`; the `scale` extra); same plan (default: here)")
    pl.add_argument("--simulate", action="store_true",
                    help="also replay the trace at its own times through the per-window plan (every GPU type needs a "
                         "latency model): SLO attainment and tail latencies, files in DIR/simulation/ (default: off)")
    pl.add_argument("--target-attainment", type=float, metavar="FRACTION",
                    help="also find, per window, the cheapest mix whose simulated SLO attainment on the window's own "
                         "requests reaches this share, e.g. 0.99 (every GPU type serving a bucket needs a latency "
                         "model); the whole trace is replayed through it and the exports deploy it (default: "
                         "throughput only)")
    pl.add_argument("--routing", default="least", choices=["least", "round-robin"],
                    help="with --simulate or --target-attainment: replica choice within a GPU type (default: least)")
    pl.add_argument("--seed", type=int, default=0, metavar="S",
                    help="with --simulate or --target-attainment: seed of the routing draws (default: 0)")
    pl.add_argument("--report", action="store_true", help="also run notebooks/04_time_varying.ipynb on the plan "
                                                            "(executed notebook and its shared HTML page in the output "
                                                            "folder; default: files only)")
    pl.add_argument("-o", "--output-dir", required=True, metavar="DIR",
                    help="folder for plan.csv, plan.json, skyserve-<gpu>.yaml, deploy.json (required)")


def _constraints(args):
    from .solver import Constraints, parse_counts

    return Constraints(max_instances=parse_counts(args.max_instances, "--max-instances"),
                       min_instances=parse_counts(args.min_instances, "--min-instances"),
                       utilization_cap=args.utilization_cap, min_total=args.min_total)


def _plan(args) -> int:
    from .files import check_output_dir, folder_lock
    from .profiles import load_gpus, select_gpus

    check_output_dir(args.output_dir, "-o/--output-dir")
    gpus = select_gpus(load_gpus(args.gpus), args.gpu)
    if args.simulate or args.target_attainment is not None:
        from .attainment import serving_gpus
        if not serving_gpus(gpus):
            raise InputError("--gpu", f"none of {', '.join(gpus)} serves any bucket at this profile's SLO: nothing "
                                      "to plan or simulate; choose GPU types with non-zero rates")
    if args.simulate:                     # refused before the trace is read or anything is solved
        from . import schemas
        from .attainment import latency_missing, serving_gpus
        missing = latency_missing(serving_gpus(gpus))
        if missing:
            raise InputError("--simulate", missing[len("No SLO attainment: "):])
        schemas.whole(args.seed, "--seed")
    if args.target_attainment is not None:     # likewise: the fraction, latency models, what it cannot combine with
        from . import schemas
        from .plan_attainment import check_target_options
        check_target_options(gpus, args.target_attainment)
        if args.smooth:
            raise InputError("--smooth", "not with --target-attainment: the plan found is deployed per window as "
                                         "found; drop --smooth (or plan twice)")
        schemas.whole(args.seed, "--seed")
    ray = _ray_option(args.ray_address)
    from .pools import session

    with folder_lock(args.output_dir, by="plan"), session(ray):   # one plan (or sweep) writing a folder at a time
        return _plan_locked(args, gpus, ray)


def _plan_locked(args, gpus, ray) -> int:
    from .plan import overflow_note, plan_trace, write_plan

    plan = plan_trace(args.trace, gpus, window=args.window, timestamp_column=args.timestamp_column,
                      input_column=args.input_column, output_column=args.output_column, overflow=args.overflow,
                      solver=args.solver, slice_factor=args.slice_factor, time_limit=args.time_limit,
                      constraints=_constraints(args), smoothing=args.smooth, workers=args.workers, ray=ray)
    note = plan.info["trace"].get("note")
    if note:
        print(f"note: {note}")
    over = plan.info["overflow"]
    if over["beyond_last_edge"]:
        print(f"note: {overflow_note(over)}")
    simulated = "--target-attainment" if args.target_attainment is not None else "--simulate" if args.simulate else None
    if simulated and not (plan.table[list(gpus)].fillna(0).to_numpy() > 0).any():
        raise InputError(simulated, "no window has a plan with a GPU (every window is empty or cannot be served): "
                                    f"nothing to simulate; run without {simulated} to see each window's status")
    found = None
    if args.target_attainment is not None:
        from .plan_attainment import attach_target, target_plan
        from .simulate import stream_from_trace
        stream = stream_from_trace(args.trace, gpus, timestamp_column=args.timestamp_column,
                                   input_column=args.input_column, output_column=args.output_column)
        found = target_plan(plan, stream, args.target_attainment, constraints=_constraints(args).check(list(gpus)),
                            routing=args.routing, seed=args.seed, workers=args.workers,
                            ray=ray, progress=sys.stderr.isatty())
        attach_target(plan, found)
    paths = write_plan(plan, args.output_dir)
    check = None
    if found is not None:                 # the replay of the plan found (it is what the exports deploy)
        from .plan_attainment import write_target_simulation
        paths.append(write_target_simulation(found, args.output_dir))
    elif args.simulate:
        from .attainment import check_trace_plan
        check = check_trace_plan(args.output_dir, args.trace, gpus, timestamp_column=args.timestamp_column,
                                 input_column=args.input_column, output_column=args.output_column,
                                 routing=args.routing, seed=args.seed, progress=sys.stderr.isatty(), ray=ray)
        paths.append(Path(args.output_dir) / "simulation")
    if args.report:
        from .run import PLAN_NOTEBOOK, execute_notebook
        executed = execute_notebook(PLAN_NOTEBOOK, Path(args.output_dir), {"plan_dir": str(Path(args.output_dir).resolve())})
        shown = Path(args.output_dir) / executed.name        # as the other files: under -o as given
        paths += [shown, shown.with_name(f"{executed.stem}-shared.html")]
    if found is not None:
        print(found.totals["sentence"] + ".")
    print(plan.totals["headline"])
    if check is not None:
        print(check.sentence + ".")
    if plan.info["profiles"].get("data_caveat"):
        print(f"Data caveat: {plan.info['profiles']['data_caveat']}")
    for bad in plan.totals["windows_without_plan"]:
        print(f"window {bad['start']}: {bad['status']}: {bad['reason']}")
    if found is not None:
        from .plan_attainment import cheaper_line, not_met_line
        att, t = found.totals["attainment"], found.totals
        if cheaper_line(t):
            print(f"note: {cheaper_line(t)}.")
        if t["windows_not_met"]:
            print(not_met_line(t) + ".")
        elif att is not None and att < found.target:
            print(f"note: every window holds the target alone, but queues carried across windows bring the whole "
                  f"trace to {att:.1%}.")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if plan.ok and (found is None or found.met) else 1


def _solve(args) -> int:
    from .profiles import load_gpus, read_melange_config, select_gpus
    from .report import workload_drop_summary
    from .solver import SOLVERS, compare
    from .workload import read_workload, workload_meta

    if args.config:
        if args.workload or args.gpus:
            raise InputError("--config", "use either -c CONFIG.json or --workload/--gpus, not both")
        workload, gpus, rate, slice_factor = read_melange_config(args.config)
    else:
        if not (args.workload and args.gpus):
            raise InputError("--workload/--gpus", "both are required without -c CONFIG.json")
        if args.rate is None:
            raise InputError("--rate", "is required with --workload/--gpus (requests/s)")
        workload, gpus, rate, slice_factor = read_workload(args.workload), load_gpus(args.gpus), None, 1
    if args.output is not None:
        from .files import check_output_file
        check_output_file(args.output, "-o/--output")
    _check_target(args.target_attainment)
    if args.target_attainment is not None:
        missing = [g for g, p in select_gpus(gpus, args.gpu).items() if p.latency is None and p.tputs.to_numpy().max() > 0]
        if missing:
            from .profiles import HOW_TO_ADD
            raise InputError("--target-attainment", f"GPU type {missing[0]} has no latency model; {HOW_TO_ADD}")
        from .simulate import stream_from_workload
        with _stream_options_named():                                            # checks the stream options
            stream_from_workload(workload, rate if args.rate is None else args.rate, args.duration,
                                 arrival=args.arrival, seed=args.seed).head(0)
    elif args.ray_address:
        raise InputError("--ray-address", "applies to --target-attainment's search only; add it or drop the address")
    ray = _ray_option(args.ray_address)
    if args.export:
        from .files import check_output_dir
        check_output_dir(args.export, "--export")
    rate = args.rate if args.rate is not None else rate
    slice_factor = args.slice_factor if args.slice_factor is not None else slice_factor
    gpus = select_gpus(gpus, args.gpu)
    constraints = _constraints(args)
    solvers = (args.solver, *(s for s in SOLVERS if s != args.solver))     # the other mix solver as the comparison
    comparison = compare(workload, gpus, rate, solvers=solvers, slice_factor=slice_factor,
                         time_limit=args.time_limit, constraints=constraints)
    dropped = workload_drop_summary(workload_meta(args.workload) if args.workload else None)
    fmt = args.format or ("text" if sys.stdout.isatty() else "json")
    out = comparison.mix.melange_json() if fmt == "melange" else {**comparison.to_dict(), "workload": dropped}
    from .profiles.consistency import set_caveat
    data_caveat = set_caveat(gpus)
    if data_caveat and fmt != "melange":
        out["data_caveat"] = data_caveat
    search = None
    if args.target_attainment is not None and comparison.mix.has_allocation:
        from .simulate import search_attainment
        search = search_attainment(workload, gpus, rate, args.target_attainment, duration_s=args.duration,
                                   arrival=args.arrival, seed=args.seed, solver=args.solver,
                                   constraints=constraints, routing=args.routing, slo=args.slo,
                                   progress=sys.stderr.isatty(), ray=ray)
        if fmt != "melange":
            out["attainment"] = search.to_dict()
    if args.output is not None:
        from .files import write_json
        write_json(args.output, out)
    if args.export and comparison.mix.has_allocation:
        from .export import result_deployment, write_exports
        write_exports(result_deployment(comparison.mix, gpus, utilization_cap=constraints.utilization_cap,
                                        source={"rate": rate, "workload": Path(args.workload or args.config).name}), args.export)
    if fmt == "text":
        from .report import comparison_headline, solver_comparison_sentence
        caveat = f" (workload: {dropped['caveat']})" if dropped["caveat"] else ""
        print(f"{comparison_headline(comparison)}{caveat}. {solver_comparison_sentence(comparison)}".rstrip())
        if data_caveat:
            print(f"Data caveat: {data_caveat}")
        if search is not None:
            print(search.message + ".")
            if search.neighbours:
                print("Removing one GPU: " + "; ".join(f"one {n['removed']} less: {n['attainment']:.1%}"
                                                         for n in search.neighbours) + ".")
    else:
        print(json.dumps(out, indent=2 if fmt == "json" else None))
    if search is not None and search.status != "met":
        return 1
    return 0 if comparison.mix.has_allocation else 1


def _edges(text: str | None, field: str):
    if text is None:
        return None
    try:
        return [float(x) if "." in x else int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(field, f"expects comma-separated numbers such as 0,25,100,250,500,1000,2000, got {text!r}") from exc


def _rates(text: str | None, field: str):
    """Comma-separated request rates (requests/s); whether each is a valid rate is checked where they are used."""
    if text is None:
        return None
    try:
        return [int(x) if x.strip().isdigit() else float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(field, f"expects comma-separated request rates in requests/s such as 1,2,4,8, "
                                f"got {text!r}") from exc


def _workload(args) -> int:
    from .workload import blend_files, build_workload, check_histogram_path, save_histogram

    check_histogram_path(args.output, "-o/--output")
    if args.blend:
        if args.engine == "ray" or args.ray_address:
            raise InputError("--engine", "ray tokenizes chat datasets; --blend mixes workload CSVs: drop --engine ray")
        parts = {}
        for item in args.blend:
            path, sep, weight = item.rpartition("=")
            if not sep or not path:
                raise InputError("--blend", f"expects CSV=WEIGHT, got {item!r}")
            if path in parts:
                raise InputError("--blend", f"names {path} twice; give each workload CSV once with its total weight")
            try:
                parts[path] = float(weight)
            except ValueError as cause:
                raise InputError("--blend", f"expects CSV=WEIGHT with a number as weight, got {item!r}") from cause
        workload, report = blend_files(parts)
        path = save_histogram(workload, report, args.output)
        print(f"wrote {path} ({report['source']})")
        return 0

    chat = {} if args.trace else {"tokenizer": args.tokenizer, "split": args.split, "revision": args.revision,
                                  "streaming": args.streaming, "schema": args.schema,
                                  "max_conversations": args.max_conversations, "seed": args.seed,
                                  "language": args.language, "turn_policy": args.turn_policy,
                                  "add_special_tokens": args.special_tokens, "chat_template": args.chat_template,
                                  "num_proc": args.num_proc}
    if args.engine != "ray" and args.ray_address:
        raise InputError("--ray-address", "applies to --engine ray only; add --engine ray or drop the address")
    if args.engine == "ray":
        if args.trace:
            raise InputError("--engine", "ray tokenizes chat datasets; a --trace already holds token counts: drop --engine ray")
        chat.update(engine="ray", ray_address=args.ray_address)
    workload, requests, report = build_workload(
        dataset=args.dataset, trace=args.trace, input_column=args.input_column, output_column=args.output_column,
        edges=_edges(args.edges, "--edges"), output_edges=_edges(args.output_edges, "--output-edges"),
        overflow=args.overflow, **chat)
    path = save_histogram(workload, report, args.output)
    print(f"wrote {path} ({report['in_histogram']} of {report['requests']} requests; "
          f"{report['dropped']} dropped by overflow={report['overflow_policy']}) from {report['source']}; "
          f"tokenizer: {report['tokenizer']}")
    return 0


def _sweep(args) -> int:
    from . import schemas
    from .config import outputs_dir
    from .sweep import load_spec, run_sweep

    if args.params:
        if args.workload or args.gpus or args.rates:
            raise InputError("--params", "use either -p SPEC.yaml or --workload/--gpus/--rates, not both")
        spec = load_spec(args.params)
    else:
        if not (args.workload and args.gpus and args.rates):
            raise InputError("--workload/--gpus/--rates", "all three are required without -p SPEC.yaml")
        if not args.output_dir:
            raise InputError("-o", "the quick form needs an output folder, e.g. -o outputs/my-sweep")
        from .files import check_output_dir
        check_output_dir(args.output_dir, "-o/--output-dir")      # its name becomes the sweep's name
        rates = _rates(args.rates, "--rates")
        from .solver import parse_counts

        constraints = {k: v for k, v in (("max_instances", parse_counts(args.max_instances, "--max-instances")),
                                         ("min_instances", parse_counts(args.min_instances, "--min-instances")),
                                         ("utilization_cap", args.utilization_cap), ("min_total", args.min_total))
                       if v not in (None, {})}
        spec = load_spec(None, workload=args.workload, gpus=args.gpus, rates=rates, solvers=args.solver,
                         name=_quick_name(args.output_dir), gpu_names=args.gpu or None,
                         slice_factors=[args.slice_factor] if args.slice_factor is not None else None,
                         time_limit=args.time_limit, constraints=constraints)
    if args.workers is not None and not 1 <= args.workers <= schemas.MAX_WORKERS:
        raise InputError("--workers", f"must be from 1 to {schemas.MAX_WORKERS}, got {args.workers}")
    out = Path(args.output_dir) if args.output_dir else outputs_dir() / spec["name"]
    from .scale import check_address

    state = run_sweep(spec, out, workers=args.workers, retry_failed=args.retry_failed, render=args.render,
                      log=lambda msg: print(msg, flush=True), ray=check_address(args.ray_address))
    failed = [k for k, v in state["points"].items() if v["status"] == "failed"]
    return 1 if failed else 0


def _quick_name(output_dir: str) -> str:
    """The quick form's sweep name: the output folder's name, made a valid name."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "-", Path(output_dir).resolve().name).lstrip(".-") or "sweep"


def _profile_import(args) -> int:
    from .profiles.measured import import_into_file

    path, profile, warnings = import_into_file(
        args.results, args.output, gpu=args.gpu, slo=args.slo, input_edges=_edges(args.edges, "--edges"),
        output_edges=_edges(args.output_edges, "--output-edges"), cost=args.cost, prices=args.prices,
        system=args.system, gpus_per_replica=args.gpus_per_replica, engine=args.engine, add=args.add,
        fill=args.fill, prediction=args.prediction, prediction_gpu=args.prediction_gpu, kv_tokens=args.kv_tokens,
        max_seqs=args.max_seqs, max_step_tokens=args.max_step_tokens)
    for warning in warnings:
        print(f"melange-nb: warning: {warning}", file=sys.stderr)
    measured = int((profile.tputs.to_numpy() > 0).sum())
    print(f"wrote {path}: {args.gpu}, {measured} of {profile.tputs.size} buckets with a rate > 0")
    return 0


def _profile_plan(args) -> int:
    from .profiles import parse_slo
    from .profiles.measured import write_benchmark_plan

    parse_slo(args.slo, field="--slo")
    from .files import check_output_dir
    check_output_dir(args.output_dir, "-o/--output-dir")
    paths = write_benchmark_plan(
        args.output_dir, gpu=args.gpu, model=args.model, base_url=args.base_url,
        input_edges=_edges(args.edges, "--edges"), output_edges=_edges(args.output_edges, "--output-edges"),
        rates=_rates(args.rates, "--rates"), num_prompts=args.num_prompts, tokenizer=args.tokenizer, slo=args.slo)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _run(args) -> int:
    from .profiles import load_gpus
    from .run import load_params, run_allocation
    from .workload import read_workload

    from .profiles import select_gpus
    from .solver import Constraints

    params = load_params(args.params)
    if args.output_dir:
        from .files import check_output_dir
        check_output_dir(args.output_dir, "-o/--output-dir")
    gpus = select_gpus(load_gpus(params["gpus"]), params["gpu_names"])  # fail fast, before any kernel starts
    Constraints.from_mapping(params["constraints"]).check(list(gpus))
    if not isinstance(params["workload"], dict):
        read_workload(params["workload"])
    run_dir = run_allocation(params, Path(args.output_dir) if args.output_dir else None, code_pages=args.with_code)
    print(_run_summary(run_dir))
    return 0


def _run_summary(run_dir: Path) -> str:
    """One line for `run`: the headline answer (and what the workload left out), then where the report is."""
    from .report import allocation_headline, workload_caveat
    from .run import locate
    from .workload import workload_meta

    alloc = json.loads((run_dir / "allocation.json").read_text())
    workload = run_dir / "workload.csv"       # built by the run, else the params file's CSV
    if not workload.is_file():
        workload = locate(json.loads((run_dir / "manifest.json").read_text())["params"]["workload"], run_dir)
    caveat = workload_caveat(workload_meta(workload))
    page = run_dir / "02_allocation-shared.html"
    return (f"{allocation_headline(alloc)}" + (f" (workload: {caveat})" if caveat else "")
            + f". Report: {page if page.is_file() else run_dir}")


def _profile(args) -> int:
    from .profiles import PROFILE_INPUT_EDGES, PROFILE_OUTPUT_EDGES, format_slo, save_profiles

    if args.profile_command in ("import", "plan", "check", "latency"):
        return {"import": _profile_import, "plan": _profile_plan, "check": _profile_check,
                "latency": _profile_latency}[args.profile_command](args)
    if args.profile_command == "compare":
        from .profiles import load_gpus
        from .profiles.calibrate import compare_profiles, format_comparison

        pairs = dict(_pair(g) for g in args.gpu or [])
        print(format_comparison(compare_profiles(load_gpus(args.a), load_gpus(args.b), pairs=pairs or None),
                                labels=(Path(args.a).stem, Path(args.b).stem)))
        return 0
    from .files import check_output_file
    from .profiles.consistency import PHYSICS, describe_kernel_data, set_caveat
    from .profiles.predict import predict_profiles

    check_output_file(args.output, "-o/--output")
    gpus = predict_profiles(args.model, args.gpu, slo=args.slo, backend=_backend_option(args.backend, args.gpu),
                            edges=_edges(args.edges, "--edges") or PROFILE_INPUT_EDGES,
                            output_edges=_edges(args.output_edges, "--output-edges") or PROFILE_OUTPUT_EDGES,
                            open_last_input=args.open_last_input, open_last_output=args.open_last_output,
                            prices=args.prices, tp=args.tp, sol=args.sol, cache=not args.no_cache)
    first = next(iter(gpus.values())).meta
    data = "; ".join(f"{n}: {describe_kernel_data(g.meta['kernel_data'])}" for n, g in gpus.items())
    caveat = set_caveat(gpus)
    physics = list(dict.fromkeys(n for g in gpus.values() for n in g.meta["notes"]
                                 if n.startswith(PHYSICS) and "outside" in n))
    auto = [n for n in first["notes"] if n.startswith("--backend auto")]
    header = (f"Predicted by `melange-nb profile predict` (aiconfigurator-core): {first['model']}, "
              f"SLO {format_slo(first['slo'])}, tp={args.tp}.\nKernel data: {data}.\n" + "".join(f"{n}.\n" for n in auto)
              + (f"WARNING: {caveat}\n" if caveat else "")
              + "Rows = input-token buckets, columns = output-token buckets; requests/s of one replica.")
    table = None
    if args.latency:
        from .simulate import latency_from_predictions
        gpus, table = latency_from_predictions(gpus, progress=sys.stderr.isatty())
    path = save_profiles(args.output, gpus, header=header)
    if table is not None:
        _print_fits(gpus, table)
    zeros = sum(1 for g in gpus.values() for c in g.meta["cell_notes"] if g.tputs.loc[c["input"], c["output"]] == 0)
    listed = ", ".join(f"{n} ({g.meta['system']}, ${g.cost:g}/h)" for n, g in gpus.items())
    print(f"wrote {path}: {listed}" + (f"; {zeros} bucket(s) are 0 with a note" if zeros else ""))
    for line in auto:
        print(line)
    if caveat:
        print(f"melange-nb: warning: {caveat}", file=sys.stderr)
        for line in physics:
            print(f"melange-nb: warning: {line}", file=sys.stderr)
    return 0


def _profile_check(args) -> int:
    from .profiles import load_gpus, select_gpus
    from .simulate import check_profiles, parse_arrival

    if args.output:
        from .files import check_output_file
        check_output_file(args.output, "-o/--output")
    parse_arrival(args.arrival)
    if args.requests < 20:
        raise InputError("--requests", f"must be at least 20, got {args.requests}")
    gpus = select_gpus(load_gpus(args.profile), args.gpu)
    table = check_profiles(gpus, arrival=args.arrival, requests=args.requests, progress=sys.stderr.isatty())
    for gpu in (g for g, p in gpus.items() if p.tputs.to_numpy().max() <= 0):
        print(f"{gpu}: serves no bucket at this SLO (every rate is 0): nothing to check")
    for gpu, part in table.groupby("gpu", sort=False):
        ratio = part["ratio"]
        within = int((abs(ratio - 1) <= 0.15).sum())
        print(f"{gpu}: {within} of {len(part)} buckets within 15% (simulated max rate / profile rate: median "
              f"{ratio.median():.2f}, range {ratio.min():.2f}-{ratio.max():.2f})")
        like = gpus[gpu].tputs
        print(part.pivot(index="input_tokens", columns="output_tokens", values="ratio")
              .reindex(index=like.index, columns=like.columns).round(2).to_string(na_rep="-"))
    if args.output:
        from .files import atomic_write
        atomic_write(args.output, lambda tmp: table.to_csv(tmp, index=False))
        print(f"wrote {args.output}")
    return 0


def _profile_latency(args) -> int:
    from .files import check_output_file
    from .profiles import load_gpus, save_profiles
    from .simulate import latency_from_predictions

    check_output_file(args.output, "-o/--output")
    if args.refine < 0:
        raise InputError("--refine", f"must be 0 or more, got {args.refine}")
    path = Path(args.profile)
    gpus, table = latency_from_predictions(load_gpus(path), refine=args.refine, progress=sys.stderr.isatty())
    header = "".join(line[2:] + "\n" for line in path.read_text(encoding="utf-8").splitlines()
                     if line.startswith("# ")).rstrip("\n") or None
    save_profiles(args.output, gpus, header=header)
    _print_fits(gpus, table)
    print(f"wrote {args.output}")
    return 0


def _print_fits(gpus, table) -> None:
    """One line per fitted latency model: its source and how many buckets it reproduces within 15%."""
    for gpu, part in table.groupby("gpu", sort=False):
        ratio = part["ratio"]
        print(f"{gpu}: {gpus[gpu].latency.source}; {int((abs(ratio - 1) <= 0.15).sum())} of {len(part)} buckets "
              f"within 15% (median {ratio.median():.2f})")


def _backend_option(values: list[str] | None, gpus: list[str]) -> str | dict[str, str]:
    """``--backend B`` for every GPU, or ``--backend NAME=B`` per GPU (the bare one is the default)."""
    default, per_gpu = "vllm", {}
    for value in values or []:
        name, sep, backend = value.partition("=")
        if sep:
            per_gpu[name.strip()] = backend.strip()
        else:
            default = value.strip()
    if not per_gpu:
        return default
    if default == "auto":
        raise InputError("--backend", "auto chooses one backend for the whole set; do not combine it with NAME=BACKEND")
    names = [(g.partition("=")[2] or g.partition("=")[0]).strip() for g in gpus]
    return {n: per_gpu.get(n, default) for n in names} | per_gpu


def _pair(text: str) -> tuple[str, str]:
    a, _, b = text.partition("=")
    return a.strip(), (b.strip() or a.strip())


def _schema(args) -> int:
    from .schemas import json_schema

    print(json.dumps(json_schema(args.kind), indent=2))
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"solve": _solve, "workload": _workload, "sweep": _sweep, "run": _run,
                "profile": _profile, "plan": _plan, "simulate": _simulate, "schema": _schema,
                "eval": _eval}[args.command](args)
    except KeyboardInterrupt:
        print("melange-nb: interrupted", file=sys.stderr)
        return 130
    except MelangeError as exc:
        print(f"melange-nb: {'' if isinstance(exc, SweepInterrupted) else 'error: '}{exc}", file=sys.stderr)
        return 130 if isinstance(exc, SweepInterrupted) else 2


if __name__ == "__main__":
    sys.exit(main())
