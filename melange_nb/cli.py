"""The ``melange-nb`` command: merges options and calls the library (after papermill's cli.py).

Bad input prints one line ``melange-nb: error: <field>: <what to fix>`` on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError, MelangeError


def _key_values(text: str, field: str) -> dict[str, int]:
    """``A10G=4,A100=2`` -> {"A10G": 4, "A100": 2}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise InputError(field, f"expects NAME=COUNT[,NAME=COUNT], got {part!r}")
        out[name.strip()] = int(value)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="melange-nb", description="Cheapest mix of GPU types for an LLM workload.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve one allocation and print JSON")
    s.add_argument("-c", "--config", help="melange-release JSON config (gpu_info, workload_distribution, ...)")
    s.add_argument("--workload", help="workload CSV (rows = input buckets, columns = output buckets)")
    s.add_argument("--gpus", help="GPU profile YAML (params/gpus/*.yaml)")
    s.add_argument("--gpu", action="append", default=[], help="use only this GPU type (repeatable)")
    s.add_argument("--rate", type=float, help="total request rate, requests/s (overrides the config's)")
    s.add_argument("--slice-factor", type=int, help="Mélange ILP slices per bucket (default: config's or 1)")
    s.add_argument("--solver", default="melange", choices=["melange", "exact"])
    s.add_argument("--time-limit", type=float, help="solver time limit in seconds")
    s.add_argument("--max-instances", default="", help="quota per GPU type, e.g. A100=2,A10G=8")
    s.add_argument("--min-instances", default="", help="minimum per GPU type, e.g. A10G=1")
    s.add_argument("--utilization-cap", type=float, default=1.0, help="plan at most this fraction of max throughput")
    s.add_argument("--min-total", type=int, default=0, help="at least this many GPUs in all (e.g. N+1)")
    s.add_argument("--format", default="json", choices=["json", "melange"],
                   help="json: solver, status, allocation, baselines, savings; melange: melange-release's result")
    s.add_argument("-o", "--output", help="also write the JSON to this file")

    r = sub.add_parser("run", help="execute the allocation notebook for a params file into outputs/<run>/")
    r.add_argument("-p", "--params", default="params/default.yaml")
    r.add_argument("-o", "--output-dir", help="run directory (default outputs/<run_name>-<timestamp>)")
    return parser


def _solve(args) -> int:
    from .profiles import load_gpus, read_melange_config, select_gpus
    from .solver import Constraints, compare
    from .workload import read_workload

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
    rate = args.rate if args.rate is not None else rate
    slice_factor = args.slice_factor if args.slice_factor is not None else slice_factor
    gpus = select_gpus(gpus, args.gpu)
    constraints = Constraints(max_instances=_key_values(args.max_instances, "--max-instances"),
                              min_instances=_key_values(args.min_instances, "--min-instances"),
                              utilization_cap=args.utilization_cap, min_total=args.min_total)
    comparison = compare(workload, gpus, rate, solvers=(args.solver,), slice_factor=slice_factor,
                         time_limit=args.time_limit, constraints=constraints)
    out = comparison.mix.melange_json() if args.format == "melange" else comparison.to_dict()
    text = json.dumps(out, indent=2 if args.format == "json" else None)
    if args.output:
        from .run import write_json
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.output), out)
    print(text)
    return 0 if comparison.mix.has_allocation else 1


def _run(args) -> int:
    from .profiles import load_gpus
    from .run import load_params, run_allocation
    from .workload import read_workload

    params = load_params(args.params)
    read_workload(params["workload"]), load_gpus(params["gpus"])  # fail fast, before any kernel starts
    run_dir = run_allocation(params, Path(args.output_dir) if args.output_dir else None)
    print(f"wrote {run_dir}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"solve": _solve, "run": _run}[args.command](args)
    except MelangeError as exc:
        print(f"melange-nb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
