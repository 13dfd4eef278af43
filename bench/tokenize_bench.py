"""Tokenization throughput: the workload pipeline vs raw `tokenizers` encode_batch on the same texts.

Usage: python bench/tokenize_bench.py [N_CONVERSATIONS] (default 50000, synthetic chats).
Prints pipeline tokens/s (request_lengths: batched Dataset.map with num_proc = cores, Arrow
batches, per-request table), raw Tokenizer.encode_batch_fast tokens/s on the same message texts
(the library's own multithreaded batch call), their ratio (target >= 0.8) and peak memory.
"""
import os
import resource
import sys
import time

import datasets
import pyarrow.compute as pc

from melange_nb.chats import load_tokenizer, request_lengths
from melange_nb.synthetic import synthetic_path


def main(n: int) -> None:
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=str(synthetic_path(n)), split="train")
    tok, info = load_tokenizer()
    cores = os.cpu_count() or 1
    texts = pc.struct_field(pc.list_flatten(ds.data.table["conversation"]), "content").to_pylist()

    # Raw first: once this process forks (the pipeline's workers), tokenizers turns off its own
    # thread pool here, which would make the raw call single-threaded and the ratio flattering.
    start = time.perf_counter()
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    raw_s = time.perf_counter() - start
    tokens = sum(len(e) for e in encodings)
    del encodings

    start = time.perf_counter()
    requests, counts = request_lengths(ds, tok, num_proc=cores)
    pipeline_s = time.perf_counter() - start

    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"dataset: synthetic:{n} ({len(ds)} conversations, {len(texts)} messages, {tokens} tokens), "
          f"tokenizer {info['name']}, cores {cores}")
    print(f"pipeline request_lengths(num_proc={cores}): {pipeline_s:.2f} s, {tokens / pipeline_s:,.0f} tokens/s, "
          f"{counts['requests']} requests")
    print(f"raw tokenizers encode_batch_fast:          {raw_s:.2f} s, {tokens / raw_s:,.0f} tokens/s")
    print(f"ratio pipeline/raw: {raw_s / pipeline_s:.2f} (target >= 0.8)")
    print(f"peak RSS: {peak_mb:,.0f} MiB (largest single process)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50000)
