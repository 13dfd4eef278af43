"""Scale out on a Ray cluster: tokenize chat datasets with Ray Data, and run sweep points as Ray tasks.

Ray is the optional extra ``scale`` (``pip install 'melange-nb[scale]'``; ``make install`` adds it).
Nothing else in the project imports Ray: the default engines (``datasets.map``, the local process
pool) need no cluster.

Where to run (`address`): a running cluster's ``HOST:PORT`` (``ray start --head`` prints it), else
the ``RAY_ADDRESS`` environment variable, else a local Ray started for this run and stopped after it.
A Ray cluster runs whatever code reaches it: keep it on a trusted network (see README "Scale out").

Workloads (`ray_chat_histogram`, ``melange-nb workload --engine ray``):
- **reading**: Ray Data reads the conversations where they are: ``synthetic[:N]``, a local Parquet or
  JSONL file or folder (at the same path on every node: a shared filesystem), a URI that pyarrow
  reads (``s3://``, ``gs://``, ...), or a Hugging Face dataset's Parquet files (``hf://``, the hub's
  own Parquet conversion of the split);
- **tokenizing**: the same request rule as the default engine (`chats.BatchLengths`) in
  ``map_batches``, one tokenizer per worker (a callable class: an actor pool);
- **counting**: each batch is reduced to counts (requests per bucket, per input and per output
  length, skips) on the worker, and the counts are summed on the cluster by a tree of Ray tasks:
  the driver receives one small table whose size depends on the number of distinct lengths, never
  on the number of requests;
- **same answer**: the histogram and the sidecar equal the default engine's on the same data
  (``engine`` says which ran; the dataset fingerprint is Ray's own file listing); the counts are
  cached in ``outputs/cache/requests/<key>.ray.json`` (key: files, tokenizer, options, edges).

Tasks (`RayPool`): the pool interface of `pools` (``submit``, ``stop``) over Ray tasks, chosen by
``--ray-address`` (or the sweep spec's ``ray:``): a sweep's points are solved (and simulated) on the
cluster by the local pool's own task function while the driver records, logs progress and renders;
a plan's windows, a simulation's GPU pools and an attainment search's candidate plans run there too.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import DatasetError, InputError, MelangeError

EXTRA = "scale"
LENGTH_AXIS = "tokens"
READ_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
MERGE_FANIN = 16            # partial count tables summed per Ray task
BATCH_SIZE = 1000           # conversations per map_batches call (as the default engine's datasets.map)
CONNECT_TIMEOUT_S = 60      # a wrong address fails in one line within this


def require_ray():
    """The `ray` module, or one line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise InputError("engine", f"Ray is not installed; install the extra: pip install 'melange-nb[{EXTRA}]' "
                                   "(make install does)") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None):
    """Ray connected for the block: `address`, else RAY_ADDRESS, else a local Ray (with `num_cpus`)
    started here and shut down after. A session someone else opened (ray.is_initialized) is used as
    it is. Yields a short description (``ray 2.x at ADDRESS, N nodes, C CPUs``)."""
    ray = require_ray()
    if ray.is_initialized():
        yield describe_cluster(ray)
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
               "configure_logging": True}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, **options)
        else:
            _start_local(ray, num_cpus, options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "locally"
        raise DatasetError(f"ray: could not connect {where} ({type(exc).__name__}: {_first_line(exc)}); "
                           "check --ray-address / RAY_ADDRESS (HOST:PORT of `ray start --head`)") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield describe_cluster(ray)
    finally:
        ray.shutdown()


def _start_local(ray, num_cpus, options, attempts: int = 3) -> None:
    """ray.init() of a local Ray, tried again when its node times out during startup: on a loaded
    machine the raylet can give up on its Python agents before they have imported Ray."""
    for attempt in range(attempts):
        try:
            ray.init(num_cpus=num_cpus, **options)
            return
        except Exception as exc:  # noqa: BLE001  (Ray raises a bare Exception for this)
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == attempts - 1:
                raise RuntimeError(_first_line(exc)) from None


def check_address(value, field: str = "--ray-address"):
    """A Ray option as given: None/False (no Ray), True (RAY_ADDRESS, else a local Ray) or ``HOST:PORT``
    (an IPv6 host in brackets, ``[::1]:6379``; port 1-65535)."""
    if value is None or value is False or value is True:
        return value or None if value is not True else True
    host, sep, port = str(value).removeprefix("ray://").rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        shown = repr(value) if len(str(value)) <= 80 else repr(str(value)[:77] + "...")
        raise InputError(field, f"expects HOST:PORT of a Ray head (e.g. 127.0.0.1:6379; port 1-65535) or true, "
                                f"got {shown}")
    return value


# The first bytes an HTTP/2 client sends (RFC 9113 3.4), then an empty SETTINGS frame: a Ray head's GCS
# port (gRPC) answers with a SETTINGS frame of its own; the dashboard (HTTP/1.1) or anything else does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
PROBE_TIMEOUT_S = 10


def check_reachable(address: str) -> None:
    """Fail in one line, within seconds, when nothing listens at HOST:PORT or what listens does not speak
    gRPC like a Ray head (e.g. the dashboard's port): `ray.init` would retry such an address for many
    minutes, printing warnings, before giving up."""
    import socket

    check_address(address)
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")          # [::1] -> ::1
    hint = "start the cluster (`ray start --head`) or fix --ray-address / RAY_ADDRESS"
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            conn.settimeout(PROBE_TIMEOUT_S)
            conn.sendall(_H2_PREFACE)
            reply = conn.recv(9)
    except (socket.timeout, TimeoutError):
        reply = b""
    except OSError as exc:
        raise DatasetError(f"ray: nothing answers at {address} ({exc.strerror or exc}); {hint}") from None
    if len(reply) < 4 or reply[3] != 4:                       # frame type 4: SETTINGS
        raise DatasetError(f"ray: {address} answers, but not as a Ray head (no gRPC); give the address "
                           "`ray start --head` prints (GCS port, 6379 by default; `ray://HOST:10001` for Ray "
                           "Client), not the dashboard's (8265)")


def describe_cluster(ray) -> str:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return f"ray {ray.__version__}, {len(nodes)} node{'s' if len(nodes) != 1 else ''}, {cpus} CPUs"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split())[:300] if text else type(exc).__name__


# ---------------------------------------------------------------- where the conversations are

def resolve_source(source: str, *, split: str = "train", revision: str | None = None, token: str | None = None):
    """(filesystem, paths, format, note, listing) for Ray Data to read `source`; checked on the driver."""
    import pyarrow.fs as pafs

    if source == "synthetic" or source.startswith("synthetic:"):
        from .chats import SYNTHETIC_NOTE
        from .synthetic import synthetic_path

        n = source.partition(":")[2] or "3000"
        if not n.isdigit() or int(n) < 1:
            raise InputError("dataset", f"synthetic:N needs a positive number of conversations, got {source!r}")
        path = synthetic_path(int(n))
        return _local(path, split, SYNTHETIC_NOTE)
    if Path(source).exists():
        return _local(Path(source), split, f"local {'folder' if Path(source).is_dir() else 'file'}")
    if "://" in source:
        try:
            fs, root = pafs.FileSystem.from_uri(source)
        except Exception as exc:  # noqa: BLE001  (unknown scheme, missing credentials, ...)
            raise InputError("dataset", f"{source} cannot be read by pyarrow ({_first_line(exc)})") from None
        return _listed(fs, root, source, "remote files")
    if revision is not None:
        raise InputError("revision", "--engine ray reads the hub's Parquet conversion of the latest revision; "
                                     "drop --revision or use the default engine")
    return _hub(source, split, token)


def _local(path: Path, split: str, note: str):
    import pyarrow.fs as pafs

    if path.is_file() and split != "train":
        raise InputError("split", f"a single local file has only the `train` split, got {split!r}; drop --split")
    return _listed(pafs.LocalFileSystem(), str(path.resolve()), str(path), note)


def _listed(fs, root: str, shown: str, note: str):
    """The files under `root` (a file or a folder) with one readable format, and their (name, size, mtime) listing."""
    import pyarrow.fs as pafs

    try:
        info = fs.get_file_info(root)
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True)) if info.type == pafs.FileType.Directory \
            else [info]
    except OSError as exc:
        raise DatasetError(f"dataset {shown}: could not be listed ({_first_line(exc)})") from None
    files = sorted((i for i in infos if i.type == pafs.FileType.File and Path(i.path).suffix.lower() in READ_FORMATS),
                   key=lambda i: i.path)
    if not files:
        raise InputError("dataset", f"{shown}: --engine ray reads Parquet or JSONL files (.parquet, .jsonl, .json), "
                                    "none found; convert the data or use the default engine")
    formats = {READ_FORMATS[Path(i.path).suffix.lower()] for i in files}
    if len(formats) > 1:
        raise InputError("dataset", f"{shown} mixes Parquet and JSON files; give one format")
    listing = [(i.path, i.size, i.mtime_ns) for i in files]
    return fs, [i.path for i in files], formats.pop(), note, listing


def _hub(name: str, split: str, token: str | None):
    """The hub's Parquet conversion of `split` (``refs/convert/parquet``), listed through HfFileSystem."""
    import pyarrow.fs as pafs

    try:
        from huggingface_hub import HfFileSystem

        hf = HfFileSystem(token=token or os.environ.get("HF_TOKEN"))
        root = f"datasets/{name}@~parquet"
        files = sorted(f for f in hf.glob(f"{root}/*/{split}/*.parquet"))
        details = [hf.info(f) for f in files]
    except Exception as exc:  # noqa: BLE001  (offline, gated, unknown: each becomes one line)
        text = _first_line(exc)
        why = ("is gated; accept its terms on its hub page and set HF_TOKEN" if "401" in text or "403" in text
               or "gated" in text.lower() else
               "could not be reached on the HuggingFace hub (offline?) nor found as a local path")
        raise DatasetError(f"dataset {name}: {why} ({text[:160]})") from None
    if not files:
        raise DatasetError(f"dataset {name}: the hub has no Parquet files for split {split!r}; check the name and --split")
    listing = [(f, d.get("size"), d.get("last_commit", {}).get("oid") if isinstance(d.get("last_commit"), dict)
                else str(d.get("blob_id") or d.get("oid") or "")) for f, d in zip(files, details)]
    return pafs.PyFileSystem(pafs.FSSpecHandler(hf)), files, "parquet", "HuggingFace hub", listing


# ---------------------------------------------------------------- the worker: tokenize and count

class TokenizeAndCount:
    """Ray Data callable class (one instance per actor, so one tokenizer per worker): a batch of
    conversations -> a small table of counts (kind, a, b, text, n) that sums across batches."""

    def __init__(self, *, tokenizer_json, template, role_key, text_key, column, turn_policy, add_special_tokens,
                 input_edges, output_edges, overflow):
        from tokenizers import Tokenizer

        from .chats import BatchLengths, load_chat_template

        tok = Tokenizer.from_str(tokenizer_json)
        self.rule = BatchLengths(tok, role_key, text_key, column, turn_policy, add_special_tokens,
                                 load_chat_template(template) if template else None)
        self.column, self.edges = column, (input_edges, output_edges, overflow)

    def __call__(self, batch):
        import pyarrow as pa

        from .workload import bucket_index

        n = batch.num_rows
        out = self.rule(batch.select([self.column]), list(range(n)))
        errors = [e for e in out["error"] if e]
        if errors:
            return _counts_table([("error", 0, 0, errors[0], 1)])
        x = np.fromiter((v for conv in out["input_tokens"] for v in conv), dtype=np.int64)
        y = np.fromiter((v for conv in out["output_tokens"] for v in conv), dtype=np.int64)
        i, j, keep, above, below = bucket_index(x.astype(float), y.astype(float), *self.edges)
        rows = [("conversations", 0, 0, "", n), ("requests", 0, 0, "", len(x)),
                ("above", 0, 0, "", int(above.sum())), ("below", 0, 0, "", int(below.sum()))]
        rows += [(k, 0, 0, "", int(np.sum(out[k]))) for k in self.rule.COUNTERS]
        parts = [_counts_table(rows)]
        for kind, a, b in (("cell", i[keep], j[keep]), ("input", x, keep), ("output", y, keep)):
            if len(a):
                pairs, counts = np.unique(np.stack([a, b.astype(np.int64)], axis=1), axis=0, return_counts=True)
                parts.append(pa.table({"kind": [kind] * len(pairs), "a": pairs[:, 0], "b": pairs[:, 1],
                                       "text": [""] * len(pairs), "n": counts.astype(np.int64)}))
        return pa.concat_tables(parts)


def _counts_table(rows):
    import pyarrow as pa

    kind, a, b, text, n = zip(*rows)
    return pa.table({"kind": list(kind), "a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64()),
                     "text": list(text), "n": pa.array(n, pa.int64())})


def sum_counts(*tables):
    """Sum count tables by (kind, a, b, text): what each merge task of the tree runs."""
    import pyarrow as pa

    table = pa.concat_tables(tables)
    return table.group_by(["kind", "a", "b", "text"]).aggregate([("n", "sum")]).rename_columns(
        ["kind", "a", "b", "text", "n"])


def _keep_language(batch, *, language):
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch["language"], language))


# ---------------------------------------------------------------- the front door

def ray_chat_histogram(source: str, *, address: str | None = None, edges: Sequence[float], output_edges=None,
                       overflow: str = "drop", tokenizer: str = "mistral-v1", split: str = "train",
                       revision: str | None = None, token: str | None = None, streaming: bool = False,
                       schema: str | None = None, max_conversations: int | None = None, seed: int | None = None,
                       language: str | None = None, turn_policy: str = "every", add_special_tokens: bool = False,
                       chat_template: bool = False, num_proc: int | None = None, cache: bool = True):
    """(workload, lengths, report) of a chat dataset tokenized and counted on a Ray cluster.

    The options are `chats.chat_requests`'s (`streaming` is implied: Ray Data always streams;
    `num_proc` = tokenizer actors, default one per cluster CPU). `lengths` is `length_counts`'s
    table: requests per input and per output length (index ``tokens``).
    """
    from .chats import BatchLengths, TURN_POLICIES, counting_policy, load_chat_template, load_tokenizer
    from .config import outputs_dir
    from .files import write_json
    from .workload import bucket_labels, chat_provenance, histogram_from_counts

    output_edges = list(edges if output_edges is None else output_edges)
    edges = list(edges)
    bucket_labels(edges), bucket_labels(output_edges)        # bad edges: one line, before any loading
    if overflow not in ("drop", "clip", "open"):
        raise InputError("overflow", f"must be one of ('drop', 'clip', 'open'), got {overflow!r}")
    if turn_policy not in TURN_POLICIES:
        raise InputError("turn_policy", f"must be one of {TURN_POLICIES}, got {turn_policy!r}")
    if max_conversations is not None and (isinstance(max_conversations, bool) or not isinstance(max_conversations, int)
                                          or max_conversations < 1):
        raise InputError("max_conversations", f"must be a positive integer or None, got {max_conversations!r}")
    if seed is not None:
        raise InputError("seed", "--engine ray takes the first --max-conversations, not a random sample; drop --seed "
                                 "or use the default engine")
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise InputError("num_proc", f"must be a whole number >= 1 (or unset for all cluster CPUs), got {num_proc!r}")
    if chat_template and add_special_tokens:
        raise InputError("chat_template", "the template already adds the special tokens; drop add_special_tokens (--special-tokens)")
    require_ray()
    fs, paths, fmt, note, listing = resolve_source(source, split=split, revision=revision, token=token)
    tok, tok_info = load_tokenizer(tokenizer, token=token)
    template = load_chat_template(tokenizer, token=token) if chat_template else None
    fingerprint = hashlib.sha256(json.dumps(listing, default=str).encode()).hexdigest()[:16]
    ds_info = {"source": source, "split": split, "revision": revision, "note": note}
    key_doc = {"engine": "ray", "files": fingerprint, "dataset": [source, split, max_conversations, language],
               "tokenizer": tok_info["sha256_16"], "schema": schema, "turn_policy": turn_policy,
               "add_special_tokens": add_special_tokens, "chat_template": template.name if template else None,
               "edges": edges, "output_edges": output_edges, "overflow": overflow}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:20]
    path = outputs_dir() / "cache" / "requests" / f"{key}.ray.json"
    if cache and path.is_file():
        saved = json.loads(path.read_text())
        summed, used_schema, cluster, state = pd.DataFrame(saved["counts"]), saved["schema"], saved["cluster"], "hit"
    else:
        worker = dict(tokenizer_json=tok.to_str(), template=tokenizer if chat_template else None,
                      turn_policy=turn_policy, add_special_tokens=add_special_tokens,
                      input_edges=edges, output_edges=output_edges, overflow=overflow)
        with ray_session(address) as cluster:
            summed, used_schema = _count_on_cluster(fs, paths, fmt, source, schema=schema, language=language,
                                                    max_conversations=max_conversations, num_proc=num_proc,
                                                    worker=worker)
        state = "miss" if cache else "off"
    errors = summed[summed["kind"] == "error"]
    if len(errors):
        raise InputError("dataset", f"could not be tokenized ({errors['text'].iloc[0]})")
    scalars = summed[~summed["kind"].isin(["cell", "input", "output"])].groupby("kind")["n"].sum()

    def total(kind):
        return int(scalars.get(kind, 0))

    if total("conversations") == 0:
        raise DatasetError(f"dataset {source}: has no conversations" + (f" in language {language!r}" if language else "")
                           + "; check the split, the language filter or the file")
    if total("messages") == 0:
        raise InputError("dataset", "every conversation is empty (no messages); check the file or the split")
    if cache and state == "miss":
        write_json(path, {"counts": summed.to_dict(orient="list"), "schema": used_schema, "cluster": cluster})
    kept, lengths = length_counts(summed)
    in_labels = bucket_labels(edges, open_last=overflow == "open")
    out_labels = bucket_labels(output_edges, open_last=overflow == "open")
    cells = np.zeros((len(in_labels), len(out_labels)), dtype=np.int64)
    c = summed[summed["kind"] == "cell"]
    np.add.at(cells, (c["a"].to_numpy(), c["b"].to_numpy()), c["n"].to_numpy())
    workload, report = histogram_from_counts(cells, kept, requests=total("requests"), above=total("above"),
                                             below=total("below"), input_edges=edges, output_edges=output_edges,
                                             overflow=overflow)
    counts = {k: total(k) for k in BatchLengths.COUNTERS}
    counts.update(conversations=total("conversations"), requests=total("requests"), schema=used_schema,
                  turn_policy=turn_policy, **counting_policy(add_special_tokens, template))
    ds_info.update(conversations=total("conversations"), fingerprint=fingerprint, max_conversations=max_conversations,
                   seed=seed, language=language)
    info = {"dataset": ds_info, "tokenizer": tok_info, "counts": counts, "cache": state}
    return workload, lengths, {**chat_provenance(info), "engine": f"ray ({cluster})", **report}


def _count_on_cluster(fs, paths, fmt, source, *, schema, language, max_conversations, num_proc, worker):
    """(summed counts as a DataFrame, schema name): read, filter, tokenize and count on the cluster."""
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy

    from .chats import SCHEMAS, detect_schema, message_keys

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx.execution_options.preserve_order = max_conversations is not None   # "the first N", as the default engine
    # No share of the cluster held back for each operator: on a small cluster that reserve left the
    # tokenizer pool without the CPUs to start (a filter or limit before it then waited forever).
    ctx.op_resource_reservation_enabled = False
    read = ray.data.read_parquet if fmt == "parquet" else ray.data.read_json
    try:
        # Reading (and filtering) take no CPU slot: the tokenizer actors hold one each, and a task
        # waiting for a slot they hold would wait forever.
        ds = read(paths, filesystem=fs, num_cpus=0)
        arrow_schema = ds.schema().base_schema
    except Exception as exc:  # noqa: BLE001  (unreadable file: one line)
        raise InputError("dataset", f"{source} could not be read as {fmt} by Ray Data ({_first_line(exc)})") from None
    columns = arrow_schema.names
    schema = schema or detect_schema(columns)
    if schema not in SCHEMAS:
        raise InputError("schema", f"unknown schema {schema!r}; choose from {list(SCHEMAS)}")
    column, role_key, text_key = SCHEMAS[schema]
    if column not in columns:
        raise InputError("schema", f"schema {schema} needs column `{column}`; the dataset has {columns}")
    keys = message_keys(arrow_schema.field(column).type, role_key, text_key)
    if keys is None:
        raise InputError("dataset", f"column `{column}` is {arrow_schema.field(column).type}, not a list of "
                                    "{role, content} strings; --engine ray needs that layout: use the default engine, "
                                    "which normalises other layouts")
    if language is not None:
        if "language" not in columns:
            raise InputError("language", f"this dataset has no `language` column (columns: {columns}); drop the filter")
        ds = ds.map_batches(functools.partial(_keep_language, language=language), batch_format="pyarrow", num_cpus=0)
    if max_conversations is not None:
        ds = ds.limit(max_conversations)
    size = num_proc or max(1, int(ray.cluster_resources().get("CPU", 1)))
    worker = {**worker, "role_key": keys[0], "text_key": keys[1], "column": column}
    partials = ds.select_columns([column]).map_batches(
        TokenizeAndCount, fn_constructor_kwargs=worker, batch_format="pyarrow", batch_size=BATCH_SIZE,
        compute=ActorPoolStrategy(min_size=1, max_size=size), num_cpus=1)
    merge = ray.remote(num_cpus=1)(sum_counts)
    try:
        refs = partials.to_arrow_refs()
        while len(refs) > 1:
            refs = [merge.remote(*refs[k:k + MERGE_FANIN]) for k in range(0, len(refs), MERGE_FANIN)]
        table = ray.get(refs[0]) if refs else sum_counts(_counts_table([("conversations", 0, 0, "", 0)]))
    except ray.exceptions.RayError as exc:
        raise DatasetError(f"ray: the cluster failed while tokenizing {source} ({type(exc).__name__}: "
                           f"{_first_line(exc)})") from None
    return table.to_pandas(), schema


def length_counts(summed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, all): requests per length (index ``tokens``; columns ``input_tokens``, ``output_tokens``)
    among the requests in the histogram, and among every request, from the summed count table."""
    frames = {}
    for name, kind in (("input_tokens", "input"), ("output_tokens", "output")):
        rows = summed[summed["kind"] == kind]
        frames[name] = rows.groupby("a")["n"].sum(), rows[rows["b"] == 1].groupby("a")["n"].sum()
    out = []
    for which in (1, 0):
        table = pd.DataFrame({name: parts[which] for name, parts in frames.items()}).fillna(0).astype(np.int64)
        table.index = table.index.astype(np.int64).rename(LENGTH_AXIS)
        table.columns.name = "requests"
        out.append(table.sort_index())
    return out[0], out[1]


# ---------------------------------------------------------------- sweep points as Ray tasks

class RemoteError(MelangeError, RuntimeError):
    """A Ray task that failed for a reason of the cluster (a node died, a worker crashed), in one line."""


class RayPool:
    """A `concurrent.futures`-style executor whose work runs as Ray tasks (one CPU each): `pools`'
    process pool, on a cluster. `submit(fn, *args)` returns a Future that completes when the
    task does; a task whose node dies is retried by Ray (`retries` times) on another node. Errors
    reach the Future as one-line `RemoteError`s; `stop()` cancels what has not finished and
    disconnects (a local Ray started for the pool is stopped)."""

    def __init__(self, address: str | None = None, *, retries: int = 3):
        ray = require_ray()
        self._session = ray_session(address)
        self.description = self._session.__enter__()
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._retries, self._remote, self._refs = retries, {}, []

    def submit(self, fn, *args):
        import concurrent.futures as cf

        import ray

        if fn not in self._remote:
            self._remote[fn] = ray.remote(num_cpus=1, max_retries=self._retries)(fn)
        ref = self._remote[fn].remote(*args)
        self._refs.append(ref)
        future: cf.Future = cf.Future()

        def done(inner):
            try:
                future.set_result(inner.result())
            except Exception as exc:  # noqa: BLE001  (any task failure: one line for the point's error)
                cause = getattr(exc, "cause", None) or exc
                if isinstance(cause, MelangeError):     # the task's own one-line error (bad input), as it is
                    future.set_exception(cause)
                else:
                    future.set_exception(RemoteError(f"{type(cause).__name__} on the Ray cluster: "
                                                     f"{_first_line(cause)}"))

        ref.future().add_done_callback(done)
        return future

    def close(self) -> None:
        """All work is done: disconnect (pools.WorkerPool.close)."""
        self.stop()

    def stop(self, grace: float = 10.0) -> None:
        """The pool interface (pools.WorkerPool.stop): cancel the tasks that have
        not finished (running ones are killed) and disconnect; a local Ray started here is stopped."""
        import ray

        for ref in self._refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        self._refs = []
        self._session.__exit__(None, None, None)
