"""Workload pipeline: tokenizer counts, the seed's request rule, schemas, cache, histograms, traces, blends."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from melange_nb.chats import chat_requests, load_chats, load_tokenizer, request_lengths
from melange_nb.hub import error_message
from melange_nb.errors import DatasetError, InputError
from melange_nb.workload import (DEFAULT_EDGES, blend, build_workload, histogram, read_trace, read_workload,
                                 save_histogram)


KNOWN = "Hello world, this is a test of the tokenizer."


@pytest.fixture(autouse=True)
def outputs(tmp_path, monkeypatch):
    # Keep caches per test, except the converted tokenizer, which is shared to save time.
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    shared = tmp_path.parent / "shared-tokenizer-cache"
    (tmp_path / "outputs" / "cache").mkdir(parents=True)
    shared.mkdir(exist_ok=True)
    os.symlink(shared, tmp_path / "outputs" / "cache" / "tokenizers")
    return tmp_path / "outputs"


@pytest.fixture
def tok():
    return load_tokenizer()[0]


def test_offline_tokenizer_counts_a_known_string(tok):
    import mistral_common
    import sentencepiece as spm
    from pathlib import Path

    ids = tok.encode(KNOWN, add_special_tokens=False).ids
    assert len(ids) == 12
    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    reference = spm.SentencePieceProcessor(model_file=str(model)).encode(KNOWN)
    assert ids == reference and tok.get_vocab_size() == 32000
    assert tok.encode(KNOWN).ids == [1] + reference   # with special tokens: BOS, as Llama-2/Mistral add it


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def n(tok, text):
    return len(tok.encode(text, add_special_tokens=False).ids)


THREE_TURNS = [("user", "What is the capital of France?"), ("assistant", "Paris is the capital of France."),
               ("user", "And of Germany, please?"), ("assistant", "Berlin."),
               ("user", "Thanks! Now write a haiku about GPUs."), ("assistant", "Silicon rivers / tokens flow")]


def test_cumulative_rule_on_a_three_turn_conversation(tmp_path, tok):
    path = write_jsonl(tmp_path / "c.jsonl", [{"conversation": [{"role": r, "content": t} for r, t in THREE_TURNS]}])
    requests, info = chat_requests(str(path), num_proc=1)
    lens = [n(tok, t) for _, t in THREE_TURNS]
    assert requests["input_tokens"].tolist() == [lens[0], sum(lens[:3]), sum(lens[:5])]
    assert requests["output_tokens"].tolist() == [lens[1], lens[3], lens[5]]
    assert requests["turn"].tolist() == [0, 1, 2]
    assert info["counts"]["special_tokens"] == "not counted"
    first, _ = chat_requests(str(path), num_proc=1, turn_policy="first")
    assert first["input_tokens"].tolist() == [lens[0]]
    # --special-tokens counts one BOS per message, like the seed's tokenizer(content).input_ids
    special, info = chat_requests(str(path), num_proc=1, add_special_tokens=True)
    assert special["input_tokens"].tolist() == [lens[0] + 1, sum(lens[:3]) + 3, sum(lens[:5]) + 5]
    assert special["output_tokens"].tolist() == [lens[1] + 1, lens[3] + 1, lens[5] + 1]
    assert info["counts"]["special_tokens"] == "counted"


def test_system_empty_and_unanswered_turns_are_counted_not_crashed(tmp_path, tok):
    rows = [{"conversation": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                              {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": None},
                              {"role": "assistant", "content": "Anything else?"}, {"role": "user", "content": "Bye"}]},
            {"conversation": [{"role": "user", "content": "Just a question"}]}]
    requests, info = chat_requests(str(write_jsonl(tmp_path / "c.jsonl", rows)), num_proc=1)
    assert requests["input_tokens"].tolist() == [n(tok, "Be brief.") + n(tok, "Hi there")]
    c = info["counts"]
    assert (c["skipped_empty_pairs"], c["unanswered_user_turns"], c["context_only_messages"]) == (1, 2, 1)


def test_schemas_give_the_same_requests(tmp_path):
    lmsys = [{"conversation": [{"role": r, "content": t} for r, t in THREE_TURNS]}]
    share = [{"conversations": [{"from": {"user": "human", "assistant": "gpt"}[r], "value": t} for r, t in THREE_TURNS]}]
    openai = [{"messages": [{"role": r, "content": t} for r, t in THREE_TURNS]}]
    results = {}
    for name, rows in (("lmsys", lmsys), ("sharegpt", share), ("openai", openai)):
        requests, info = chat_requests(str(write_jsonl(tmp_path / f"{name}.jsonl", rows)), num_proc=1)
        assert info["counts"]["schema"] == name
        results[name] = requests[["input_tokens", "output_tokens"]].values.tolist()
    assert results["lmsys"] == results["sharegpt"] == results["openai"]


@pytest.mark.slow
def test_local_formats_parquet_csv_arrow_and_save_to_disk(tmp_path):
    import datasets

    rows = [{"conversation": [{"role": r, "content": t} for r, t in THREE_TURNS]}] * 3
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "c.parquet"))
    ds.save_to_disk(str(tmp_path / "disk"))
    pd.DataFrame({"conversation": [json.dumps(r["conversation"]) for r in rows]}).to_csv(tmp_path / "c.csv", index=False)
    arrow = next(f for f in (tmp_path / "disk").iterdir() if f.suffix == ".arrow")
    expected = chat_requests(str(write_jsonl(tmp_path / "c.jsonl", rows)), num_proc=1)[0]["input_tokens"].tolist()
    for source in ("c.parquet", "disk", "c.csv", arrow):
        got = chat_requests(str(tmp_path / source), num_proc=1)[0]["input_tokens"].tolist()
        assert got == expected, source


@pytest.mark.slow
def test_synthetic_dataset_is_deterministic_and_cached(outputs):
    a, info_a = chat_requests("synthetic:400", num_proc=2)
    cache = outputs / "cache" / "requests" / f"{info_a['cache_key']}.parquet"
    mtime = cache.stat().st_mtime_ns
    b, info_b = chat_requests("synthetic:400", num_proc=2)
    assert (info_a["cache"], info_b["cache"]) == ("miss", "hit")
    assert cache.stat().st_mtime_ns == mtime and a.equals(b)
    assert "SYNTHETIC" in info_a["dataset"]["note"] and info_a["tokenizer"]["name"] == "mistral-v1"
    single, info_c = chat_requests("synthetic:400", num_proc=1, turn_policy="first")
    assert info_c["cache"] == "miss" and len(single) == 400
    # a cache hit survives a different number of workers: the result does not depend on it
    assert chat_requests("synthetic:400", num_proc=1)[1]["cache"] == "hit"


@pytest.mark.slow
def test_num_proc_does_not_change_the_result():
    import datasets
    from melange_nb.synthetic import synthetic_path

    ds = datasets.load_dataset("json", data_files=str(synthetic_path(2500)), split="train")
    tok = load_tokenizer()[0]
    one, c1 = request_lengths(ds, tok, num_proc=1)
    two, c2 = request_lengths(ds, tok, num_proc=2)
    assert one.equals(two) and c1 == c2


def test_azure_trace_histogram_equals_direct_numpy(shared_data):
    raw = pd.read_csv(shared_data / "azure_llm_inference_conv_2023.csv")
    x, y = raw["ContextTokens"].to_numpy(), raw["GeneratedTokens"].to_numpy()
    workload, report = histogram(read_trace(shared_data / "azure_llm_inference_conv_2023.csv"))
    edges = np.array(DEFAULT_EDGES)
    counts = np.zeros((6, 6))
    for i in range(6):
        for j in range(6):
            counts[i, j] = np.sum((x >= edges[i]) & (x < edges[i + 1]) & (y >= edges[j]) & (y < edges[j + 1]))
    kept = counts.sum()
    assert kept == report["in_histogram"] and report["dropped"] == len(x) - kept == report["beyond_last_edge"]
    np.testing.assert_allclose(workload.to_numpy(), counts / kept)
    inside = (x < 2000) & (y < 2000)
    assert report["stats"]["p90"]["input_tokens"] == pytest.approx(np.percentile(x[inside], 90))


def test_overflow_policies_by_hand():
    requests = pd.DataFrame({"input_tokens": [10, 30, 150, 5000], "output_tokens": [10, 10, 3000, 10]})
    edges = [0, 25, 100, 200]
    drop, r = histogram(requests, input_edges=edges, overflow="drop")
    assert r["dropped"] == 2 and drop.loc["0-25", "0-25"] == 0.5 and drop.loc["25-100", "0-25"] == 0.5
    assert r["stats"]["max"]["input_tokens"] == 30
    clip, r = histogram(requests, input_edges=edges, overflow="clip")
    assert r["dropped"] == 0 and clip.loc["100-200", "100-200"] == 0.25 and clip.loc["100-200", "0-25"] == 0.25
    assert r["stats"]["max"]["input_tokens"] == 5000
    opened, r = histogram(requests, input_edges=edges, overflow="open")
    assert list(opened.index)[-1] == "200+" and opened.loc["100-200", "200+"] == 0.25
    assert opened.loc["200+", "0-25"] == 0.25 and opened.to_numpy().sum() == pytest.approx(1)
    with pytest.raises(InputError, match="overflow: must be one of"):
        histogram(requests, overflow="ignore")


def test_blend_of_chat_and_long_documents(shared_data):
    chat, _ = histogram(read_trace(shared_data / "azure_llm_inference_conv_2023.csv"))
    docs, _ = histogram(read_trace(shared_data / "vidur_arxiv_summarization_llama2.csv", input_column="num_prefill_tokens",
                                   output_column="num_decode_tokens"), overflow="clip")
    mixed = blend({"chat": chat, "docs": docs}, {"chat": 0.8, "docs": 0.2})
    np.testing.assert_allclose(mixed.to_numpy(), 0.8 * chat.to_numpy() + 0.2 * docs.to_numpy())
    other, _ = histogram(read_trace(shared_data / "azure_llm_inference_conv_2023.csv"), input_edges=[0, 100, 2000])
    with pytest.raises(InputError, match="buckets differ"):
        blend({"chat": chat, "other": other}, {"chat": 1, "other": 1})


@pytest.mark.parametrize("content, match", [
    ("a,b\n1,2\n", r"has no column\(s\) \['ContextTokens', 'GeneratedTokens'\]; it has \['a', 'b'\]"),
    ("ContextTokens,GeneratedTokens\n10,5\n-3,4\n", "ContextTokens: row 3 holds -3"),
    ("ContextTokens,GeneratedTokens\n10,5\n7,many\n", "GeneratedTokens: row 3 holds 'many'"),
    ("ContextTokens,GeneratedTokens\n", "has no rows"),
])
def test_bad_traces(tmp_path, content, match):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        read_trace(path)


@pytest.mark.slow
def test_bad_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match="could not reach the HuggingFace hub"):
        load_chats("lmsys/lmsys-chat-1m")
    with pytest.raises(InputError, match="no conversation column found.*'text'"):
        chat_requests(str(write_jsonl(tmp_path / "x.jsonl", [{"text": "hi"}])))
    with pytest.raises(InputError, match="has no `language` column"):
        load_chats(str(write_jsonl(tmp_path / "y.jsonl", [{"conversation": []}])), language="English")
    rows = [{"language": "English", "conversation": [{"role": "user", "content": "x"}]}]
    with pytest.raises(DatasetError, match="has no conversations in language 'German'"):
        load_chats(str(write_jsonl(tmp_path / "z.jsonl", rows)), language="German")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DatasetError, match="the file is empty"):
        load_chats(str(tmp_path / "empty.jsonl"))
    with pytest.raises(InputError, match="unknown extension"):
        load_chats(str(write_jsonl(tmp_path / "w.txt", rows)))


def test_gated_dataset_message_says_accept_terms_and_set_token():
    from datasets.exceptions import DatasetNotFoundError

    exc = DatasetNotFoundError("Dataset 'lmsys/lmsys-chat-1m' is a gated dataset on the Hub. You must be authenticated to access it.")
    msg = error_message("dataset lmsys/lmsys-chat-1m", exc, "https://huggingface.co/datasets/lmsys/lmsys-chat-1m")
    assert "accept its terms at https://huggingface.co/datasets/lmsys/lmsys-chat-1m" in msg and "HF_TOKEN" in msg


def test_build_workload_sidecar_and_csv_round_trip(tmp_path):
    workload, requests, report = build_workload(dataset="synthetic:300", num_proc=1)
    path = save_histogram(workload, report, tmp_path / "w.csv")
    back = pd.read_csv(path, index_col=0)
    assert back.index.name == "input_tokens" and list(back.columns) == list(workload.columns)
    np.testing.assert_allclose(back.to_numpy(), workload.to_numpy())
    assert read_workload(path).equals(workload)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert "SYNTHETIC" in meta["source"] and meta["tokenizer"].startswith("mistral-v1")
    assert meta["requests"] == len(requests) and meta["overflow_policy"] == "drop"
    # the report's counts table: shares only for requests (conversations and messages are not requests)
    from melange_nb.report import workload_counts_table

    table = workload_counts_table(report)
    assert table.loc["requests", "share of requests"] == "100.0%"
    assert table.loc["in the histogram", "share of requests"] == f"{report['in_histogram'] / len(requests):.1%}"
    assert table.loc["messages (dataset)", "count"] == f"{report['counts']['messages']:,}"
    assert table.loc["messages (dataset)", "share of requests"] == ""
    assert table.loc["conversations (dataset)", "share of requests"] == ""
    shares = [float(x.rstrip("%")) for x in table["share of requests"] if x]
    assert all(0 <= x <= 100 for x in shares)        # never "200.0%" of requests


def test_blend_cli_writes_the_mix_and_its_provenance(shared_data, tmp_path):
    from melange_nb.cli import main

    chat, docs, mix = tmp_path / "chat.csv", tmp_path / "docs.csv", tmp_path / "mix.csv"
    assert main(["workload", "--trace", str(shared_data / "azure_llm_inference_conv_2023.csv"), "-o", str(chat)]) == 0
    assert main(["workload", "--trace", str(shared_data / "vidur_arxiv_summarization_llama2.csv"), "--input-column",
                 "num_prefill_tokens", "--output-column", "num_decode_tokens", "--overflow", "clip", "-o", str(docs)]) == 0
    assert main(["workload", "--blend", f"{chat}=4", "--blend", f"{docs}=1", "-o", str(mix)]) == 0
    expected = 0.8 * read_workload(chat) + 0.2 * read_workload(docs)
    np.testing.assert_allclose(read_workload(mix).to_numpy(), expected.to_numpy())
    meta = json.loads(mix.with_suffix(".json").read_text())
    assert meta["parts"][str(chat)]["weight"] == 0.8 and "vidur" in meta["parts"][str(docs)]["source"]
    assert main(["workload", "--blend", str(chat), "-o", str(tmp_path / "x.csv")]) == 2


def test_any_hf_tokenizer_by_path_counts_like_the_default(tmp_path, outputs):
    from transformers import PreTrainedTokenizerFast

    load_tokenizer()  # converts and caches the default
    folder = tmp_path / "tok"
    PreTrainedTokenizerFast(tokenizer_file=str(outputs / "cache" / "tokenizers" / "mistral-v1-bos" / "tokenizer.json")) \
        .save_pretrained(str(folder))
    tok, info = load_tokenizer(str(folder))
    assert info["name"] == str(folder) and len(tok.encode(KNOWN, add_special_tokens=False).ids) == 12
    path = write_jsonl(tmp_path / "c.jsonl", [{"conversation": [{"role": r, "content": t} for r, t in THREE_TURNS]}])
    by_path, info = chat_requests(str(path), tokenizer=str(folder), num_proc=1)
    default, _ = chat_requests(str(path), num_proc=1)
    assert by_path.equals(default) and info["tokenizer"]["note"] == "HuggingFace tokenizer"
