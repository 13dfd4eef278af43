"""A plan out to the systems people deploy with: SkyServe service YAMLs and a plain deploy.json.

Any plan exports: a static one (a `SolveResult` from ``solve``) or one per time window (a
``plan.Plan``). One SkyServe service per GPU type in use (``skyserve-<gpu>.yaml``), because a
SkyServe service has one accelerator type; a request-size-aware load balancer in front splits the
traffic between them with the routing shares, which ``deploy.json`` lists in full (per bucket, and
per window for a plan) and each YAML carries in its ``envs``.

Fields written (SkyPilot task YAML with a ``service`` section, per the SkyServe service YAML spec):
``resources.accelerators`` (``<gpu>:<gpus_per_replica>``: the profile's GPU name, and its
tensor-parallel size, 1 when unknown), ``resources.ports``,
``service.readiness_probe.path``, ``service.replica_policy`` with ``min_replicas``/``max_replicas``
(the plan's fewest and most GPUs of that type; equal for a static plan) and
``target_qps_per_replica``: the requests/s one GPU sustains on the mix of request sizes routed to
it, from the profile's throughputs, times the utilisation cap. ``run`` is left for the user's
model server command. A per-window plan found for an SLO attainment target (``plan
--target-attainment``) is deployed as found: its counts and routes per window, and as
``target_qps_per_replica`` the fewest requests/s per replica of any of its windows (so the autoscaler
keeps at least the counts found); ``deploy.json``'s ``plan`` and each YAML's header say so.

Every file is rendered in memory first (PyYAML's dumper; comments through ``files.comment_lines``),
so a GPU name the exports cannot take fails before anything is written; each file is then written
atomically, ``deploy.json`` last, and service files the previous ``deploy.json`` listed but this one
does not are removed: the folder always holds one consistent set.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import pandas as pd
import yaml

from . import schemas
from .files import comment_lines, write_text
from .profiles import GpuProfile
from .solver import SolveResult
from .workload import INPUT_AXIS, OUTPUT_AXIS

DEPLOY_FORMAT = "melange-nb deploy v1"


def _routing_stats(routing: pd.DataFrame, gpus: Mapping[str, GpuProfile]) -> pd.DataFrame:
    """Routing rows (input, output, gpu, rate) with the GPU load each row adds at profiled max throughput."""
    tput = pd.concat({g: p.tputs.stack() for g, p in gpus.items()}, names=["gpu", INPUT_AXIS, OUTPUT_AXIS])
    keyed = routing.set_index(["gpu", INPUT_AXIS, OUTPUT_AXIS])
    out = keyed.assign(load=keyed["rate"] / tput.reindex(keyed.index).to_numpy())
    return out.reset_index()


def _routes(routing: pd.DataFrame) -> list[dict]:
    """Share of each bucket's requests per GPU type (rate-weighted when rows come from many windows)."""
    if routing.empty:
        return []
    per = routing.groupby([INPUT_AXIS, OUTPUT_AXIS, "gpu"], sort=False)["rate"].sum()
    total = per.groupby(level=[0, 1], sort=False).transform("sum")
    share = (per / total).round(9)
    routes = []
    for (i, o), grp in share.groupby(level=[0, 1], sort=False):
        routes.append({INPUT_AXIS: i, OUTPUT_AXIS: o,
                       "shares": {g: float(s) for (_, _, g), s in grp.items() if s > 0}})
    return routes


def _gpu_entries(routing: pd.DataFrame, gpus: Mapping[str, GpuProfile], low: Mapping[str, int],
                 high: Mapping[str, int], cap: float, qps_given: Mapping[str, float] | None = None) -> dict:
    stats = _routing_stats(routing, gpus) if not routing.empty else routing.assign(load=[])
    per = stats.groupby("gpu")[["rate", "load"]].sum() if not stats.empty else pd.DataFrame(columns=["rate", "load"])
    out = {}
    for g, p in gpus.items():
        if high.get(g, 0) <= 0:
            continue
        qps = float(per.at[g, "rate"] / per.at[g, "load"] * cap) if g in per.index and per.at[g, "load"] > 0 else None
        if qps_given is not None:
            qps = qps_given.get(g)
        per_replica = p.meta.get("gpus_per_replica")
        per_replica = per_replica if isinstance(per_replica, int) and per_replica >= 1 else 1   # "unknown": 1
        out[g] = {"accelerator": f"{g}:{per_replica}", "cost_per_hour": p.cost, "min_replicas": int(low.get(g, 0)),
                  "max_replicas": int(high[g]), "target_qps_per_replica": None if qps is None else round(qps, 4),
                  "service_file": service_file_name(g)}
    return out


def service_file_name(gpu: str) -> str:
    """``skyserve-<gpu>.yaml`` with the GPU name lower-cased and made file-safe."""
    return f"skyserve-{schemas.file_safe(gpu)}.yaml"


def result_deployment(result: SolveResult, gpus: Mapping[str, GpuProfile], *, utilization_cap: float = 1.0,
                      source: Mapping | None = None) -> dict:
    """deploy.json for a static plan: fixed replicas per GPU type and the routing shares per bucket."""
    if not result.has_allocation:
        raise ValueError(f"result {result.solver} has no allocation ({result.status}); nothing to export")
    routing = result.routing if result.routing is not None else pd.DataFrame(columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "rate"])
    return {"format": DEPLOY_FORMAT, "kind": "static", "solver": result.solver, "status": result.status,
            "cost_per_hour": result.cost, **({"source": dict(source)} if source else {}),
            "gpus": _gpu_entries(routing, gpus, result.counts, result.counts, utilization_cap),
            "routes": _routes(routing)}


def plan_deployment(plan) -> dict:
    """deploy.json for a per-window plan: replica bounds per GPU type, overall shares and the schedule.

    With a target attainment (``plan.target``, `plan_attainment.TargetPlan`) the plan deployed is the one
    found for the target: its counts are each window's ``replicas``, its routing the ``routes``; the
    throughput-only counts stay beside them as ``throughput_replicas``, and ``plan`` says which it is.
    """
    names = list(plan.gpus)
    table = plan.table
    target = getattr(plan, "target", None)
    good = table["status"].isin(["optimal", "time_limit", "empty"])
    if target is not None:
        deployed = table[[f"target_{g}" for g in names]].set_axis(names, axis=1)
        frames = [r.assign(window=w) for w, r in enumerate(target.routes) if r is not None and len(r)]
        what = (f"the cheapest per-window mix found whose simulated SLO attainment ({target.totals['slo']}) on each "
                f"window's own requests reaches {target.target:.4g} (melange-nb plan --target-attainment); "
                "throughput_replicas: the throughput-only mix")
    else:
        deployed = table[names]
        frames = [r.routing.assign(window=w) for w, r in enumerate(plan.results)
                  if r is not None and r.has_allocation and r.routing is not None]
        what = "the cheapest per-window mix at profiled throughput"
    counts = deployed.loc[good].astype(int)
    routing = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "rate", "window"])
    cap = plan.info.get("constraints", {}).get("utilization_cap", 1.0)
    schedule = []
    by_window = dict(tuple(routing.groupby("window"))) if not routing.empty else {}
    for w in range(len(table)):
        row = table.iloc[w]
        entry = {"start": row["start"].isoformat(), "end": row["end"].isoformat(), "status": row["status"],
                 "rate": round(float(row["rate"]), 6),
                 "replicas": None if not good.iloc[w] else {g: int(deployed.iloc[w][g]) for g in names}}
        if target is not None and good.iloc[w]:
            entry["throughput_replicas"] = {g: int(row[g]) for g in names}
        if "smoothed_cost_per_hour" in table and good.iloc[w]:
            entry["smoothed_replicas"] = {g: int(row[f"smoothed_{g}"]) for g in names}
        if w in by_window:
            entry["routes"] = {f"{r[INPUT_AXIS]}|{r[OUTPUT_AXIS]}": {g: round(float(s), 6) for g, s in zip(r["gpus"], r["shares"])}
                               for r in _compact(by_window[w])}
        schedule.append(entry)
    smoothed = "smoothed_cost_per_hour" in table
    top = table.loc[good, [f"smoothed_{g}" for g in names]].astype(int).max() if smoothed else counts.max()
    high = {g: int(top.iloc[k]) for k, g in enumerate(names)} if len(counts) else {}
    low = counts.min().to_dict() if len(counts) else {}
    headline = target.totals["sentence"] if target is not None else plan.totals.get("headline")
    qps_rule = ({"qps_rule": "the fewest requests/s per replica in any window of the plan found, so an autoscaler "
                             "keeps at least its counts"} if target is not None else {})
    return {"format": DEPLOY_FORMAT, "kind": "per_window", "solver": plan.info.get("solver"),
            "window_seconds": plan.windows.seconds, "headline": headline, "plan": what, **qps_rule,
            "profiles": plan.info.get("profiles"),
            "gpus": _gpu_entries(routing, plan.gpus, low, high, cap,
                                 _qps_found(routing, counts) if target is not None else None),
            "routes": _routes(routing), "schedule": schedule}


def _qps_found(routing: pd.DataFrame, counts: pd.DataFrame) -> dict[str, float]:
    """Per GPU type, the fewest requests/s per replica in any window of a plan found for an attainment target:
    an autoscaler aiming at this QPS per replica keeps at least the counts found in every window (the profile's
    max throughput would scale back down to the throughput-only plan)."""
    if routing.empty:
        return {}
    rate = routing.groupby(["window", "gpu"])["rate"].sum()
    out = {}
    for (w, g), r in rate.items():
        n = int(counts.at[w, g]) if w in counts.index else 0
        if n > 0 and r > 0:
            out[g] = min(out.get(g, float("inf")), float(r) / n)
    return {g: round(v, 4) for g, v in out.items()}


def _compact(routing: pd.DataFrame) -> list[dict]:
    out = []
    for (i, o), grp in routing.groupby([INPUT_AXIS, OUTPUT_AXIS], sort=False):
        out.append({INPUT_AXIS: i, OUTPUT_AXIS: o, "gpus": list(grp["gpu"]), "shares": list(grp["share"])})
    return out


def skyserve_service(deploy: Mapping, gpu: str, *, port: int = 8000, readiness_path: str = "/v1/models") -> dict:
    """The SkyServe service (a SkyPilot task with a ``service`` section) for one GPU type of a deployment."""
    entry = deploy["gpus"][gpu]
    shares = {f"{r[INPUT_AXIS]}|{r[OUTPUT_AXIS]}": r["shares"][gpu] for r in deploy["routes"] if gpu in r["shares"]}
    policy = {"min_replicas": entry["min_replicas"], "max_replicas": entry["max_replicas"]}
    if entry["target_qps_per_replica"]:
        policy["target_qps_per_replica"] = entry["target_qps_per_replica"]
    return {"name": f"melange-{service_file_name(gpu)[len('skyserve-'):-len('.yaml')]}",
            "resources": {"accelerators": entry["accelerator"], "ports": port},
            "envs": {"MELANGE_GPU": gpu, "MELANGE_ROUTING_SHARES": json.dumps(shares, separators=(",", ":"))},
            "service": {"readiness_probe": {"path": readiness_path}, "replica_policy": policy}}


def skyserve_yaml(deploy: Mapping, gpu: str, **options) -> str:
    """``skyserve_service`` as YAML text (PyYAML's dumper) with a comment header saying what it is and what to add."""
    entry = deploy["gpus"][gpu]
    header = comment_lines(
        f"SkyServe service for {gpu} in a melange-nb {str(deploy['kind']).replace('_', '-')} plan "
        f"(solver {deploy.get('solver')}).\n"
        + (f"Deploys {deploy['plan']}.\n" if deploy.get("plan") else "")
        + f"{entry['min_replicas']}-{entry['max_replicas']} replicas; target_qps_per_replica = "
        + (deploy.get("qps_rule") or f"requests/s one {gpu} sustains on the request sizes routed to it (profile "
                                     "throughputs x utilisation cap)") + ".\n"
        "MELANGE_ROUTING_SHARES: share of each input|output token bucket sent to this GPU type; "
        "deploy.json has every type's shares.\n"
        "Add your model server as `run:` (e.g. vllm serve <model> --port 8000), then: sky serve up <this file>")
    return header + yaml.safe_dump(skyserve_service(deploy, gpu, **options), sort_keys=False, allow_unicode=True)


def render_exports(deploy: Mapping, **options) -> dict[str, str]:
    """File name -> text of every export file (``skyserve-<gpu>.yaml`` per GPU type, ``deploy.json`` last),
    made in memory so a bad name fails before anything is written."""
    schemas.gpu_names(list(deploy["gpus"]), "deploy gpus")      # printable, bounded, distinct file names
    files = {deploy["gpus"][g]["service_file"]: skyserve_yaml(deploy, g, **options) for g in deploy["gpus"]}
    files["deploy.json"] = json.dumps(deploy, indent=2, default=str) + "\n"
    return files


def write_exports(deploy: Mapping, out_dir: str | Path, **options) -> list[Path]:
    """Write ``deploy.json`` and one ``skyserve-<gpu>.yaml`` per GPU type in use into `out_dir`, replacing
    the previous export: each file is written atomically, ``deploy.json`` last, then the service files
    the previous ``deploy.json`` listed and this one does not are removed."""
    out_dir = Path(out_dir)
    files = render_exports(deploy, **options)
    old = _previous_service_files(out_dir / "deploy.json")
    paths = [write_text(out_dir / name, text) for name, text in files.items()]
    for name in old - set(files):
        (out_dir / name).unlink(missing_ok=True)
    return paths


_SERVICE_FILE = re.compile(r"skyserve-[a-z0-9-]+\.yaml")


def _previous_service_files(path: Path) -> set[str]:
    """Service file names a previous ``deploy.json`` listed (only names of the form skyserve-*.yaml)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        listed = [entry.get("service_file") for entry in old["gpus"].values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()
    return {name for name in listed if isinstance(name, str) and _SERVICE_FILE.fullmatch(name)}
