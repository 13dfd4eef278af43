"""Chat datasets -> per-request token lengths (the workload stage's input side).

Requests from a conversation (the seed's rule): for each user message immediately followed by an
assistant message, input = tokens of the whole conversation so far including that user message,
output = tokens of that assistant message. Each message is tokenized once; inputs are running
sums, never re-tokenized histories.

Counting policy, recorded with every result:
- by default message *content* tokens only: no special tokens (BOS/EOS) unless
  `add_special_tokens=True`, and no chat template;
- with `chat_template=True`, each request's input is the prompt as the server sees it: the
  conversation so far rendered by the model's chat template with the generation prompt
  (`mistral-v1`: mistral-common's v1 instruct tokenizer, ``<s>[INST] user [/INST] reply</s>...``;
  other tokenizers: HuggingFace ``apply_chat_template``), tokenized whole. Outputs stay content
  tokens. Empty messages are left out of the rendered prompt (Mistral's template rejects an empty
  reply); system messages go where the template puts them; other roles are rendered as user text;
- system, tool and other non-user/assistant messages count as context for later requests but are
  never requests themselves;
- a user/assistant pair where either message is empty or null is skipped and counted;
- a conversation ending on a user message has that last turn counted as unanswered.

Schemas (auto-detected from the column name, or forced with `schema=`): ``lmsys``
(``conversation``: list of {role, content}), ``sharegpt`` (``conversations``: list of
{from: human|gpt|system, value}), ``openai`` (``messages``: list of {role, content}).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import hub
from .config import outputs_dir
from .errors import DatasetError, InputError
from .files import atomic_write, write_json
from .schemas import is_count

DEFAULT_TOKENIZER = "mistral-v1"
TOKENIZER_NOTE = {DEFAULT_TOKENIZER: "Mistral-7B v0.1 SentencePiece (32k vocab, Llama-2 style), "
                                     "shipped offline in the mistral-common wheel"}
SCHEMAS = {"lmsys": ("conversation", "role", "content"), "sharegpt": ("conversations", "from", "value"),
           "openai": ("messages", "role", "content")}
USER_ROLES, ASSISTANT_ROLES = {"user", "human"}, {"assistant", "gpt", "chatgpt", "bard", "model", "bing"}
TURN_POLICIES = ("every", "first")
REQUEST_COLUMNS = ["conversation", "turn", "input_tokens", "output_tokens"]
SYNTHETIC_NOTE = "SYNTHETIC: random words in the lmsys schema, made by melange_nb.synthetic (not real chats)"


# ---------------------------------------------------------------- tokenizers

def load_tokenizer(name: str = DEFAULT_TOKENIZER, *, token: str | None = None):
    """(tokenizers.Tokenizer, info) for a HuggingFace tokenizer name or path, or the offline default.

    ``mistral-v1`` converts mistral-common's bundled SentencePiece model once (through
    transformers' LlamaTokenizer, DESIGN trap 4) and caches the fast tokenizer under outputs/cache.
    """
    from tokenizers import Tokenizer

    if name == DEFAULT_TOKENIZER:
        path = outputs_dir() / "cache" / "tokenizers" / f"{name}-bos" / "tokenizer.json"
        if not path.is_file():
            _convert_mistral_v1(path)
        tok = Tokenizer.from_file(str(path))
    else:
        hf = hub.load_tokenizer(name, token=token)
        tok = getattr(hf, "backend_tokenizer", None)
        if tok is None:
            raise InputError("tokenizer", f"{name} has no fast (Rust) tokenizer; choose one with a tokenizer.json")
    digest = hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]
    return tok, {"name": name, "sha256_16": digest, "vocab_size": tok.get_vocab_size(),
                 "note": TOKENIZER_NOTE.get(name, "HuggingFace tokenizer")}


def _convert_mistral_v1(target: Path) -> None:
    import shutil
    import tempfile

    import mistral_common
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")   # no "PyTorch was not found" line: not needed
    from transformers import LlamaTokenizer

    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not model.is_file():
        raise DatasetError(f"tokenizer {DEFAULT_TOKENIZER}: {model} is missing; reinstall mistral-common")
    from tokenizers.processors import TemplateProcessing

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(model, Path(tmp) / "tokenizer.model")
        hf = LlamaTokenizer.from_pretrained(tmp)
    tok = hf.backend_tokenizer
    # Like Mistral's and Llama-2's own tokenizers: BOS <s> before each sequence when special tokens
    # are counted (the converted model has no template). The seed's per-message counts include it.
    bos = tok.token_to_id("<s>")
    tok.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    atomic_write(target, lambda tmp: tok.save(str(tmp)))


# ---------------------------------------------------------------- chat templates

def load_chat_template(name: str = DEFAULT_TOKENIZER, *, token: str | None = None):
    """A counter of prompt tokens as the server sees them: ``.count(kinds, texts)`` for one
    conversation prefix (kinds: user, assistant, system, other) rendered with the generation prompt.

    ``mistral-v1``: mistral-common's v1 instruct tokenizer (offline); any other name: the
    HuggingFace tokenizer's own ``chat_template`` through ``apply_chat_template``.
    """
    if name == DEFAULT_TOKENIZER:
        return _MistralTemplate()
    hf = hub.load_tokenizer(name, token=token, probe=False)
    if not getattr(hf, "chat_template", None):
        raise InputError("chat_template", f"tokenizer {name} has no chat template; drop --chat-template or choose an instruct/chat tokenizer")
    return _HFTemplate(name, hf)


def _rendered(kinds, texts):
    """(role, text) pairs for a template: empty messages left out, other roles as user text."""
    roles = {"user": "user", "assistant": "assistant", "system": "system", "other": "user"}
    return [(roles[k], t) for k, t in zip(kinds, texts) if t]


class _MistralTemplate:
    """mistral-common's v1 instruct tokenizer: ``<s>[INST] user [/INST] reply</s>[INST] ... [/INST]``."""

    name = "mistral-common v1 instruct (encode_chat_completion)"

    def __init__(self):
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        self.tokenizer = MistralTokenizer.v1()

    def count(self, kinds, texts) -> int:
        from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        make = {"user": UserMessage, "assistant": AssistantMessage, "system": SystemMessage}
        messages = [make[role](content=text) for role, text in _rendered(kinds, texts)]
        return len(self.tokenizer.encode_chat_completion(ChatCompletionRequest(messages=messages)).tokens)


class _HFTemplate:
    """A HuggingFace tokenizer's ``apply_chat_template`` with ``add_generation_prompt=True``."""

    def __init__(self, name, tokenizer):
        self.name, self.tokenizer = f"{name} apply_chat_template", tokenizer

    def count(self, kinds, texts) -> int:
        messages = [{"role": role, "content": text} for role, text in _rendered(kinds, texts)]
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


# ---------------------------------------------------------------- datasets

def load_chats(source: str, *, split: str = "train", revision: str | None = None, token: str | None = None,
               streaming: bool = False, max_conversations: int | None = None, seed: int | None = None,
               language: str | None = None):
    """(datasets.Dataset, info) from the hub by name, a local file or folder, or ``synthetic[:N]``.

    Local files: json, jsonl, parquet, csv, arrow, or a ``save_to_disk`` folder. `max_conversations`
    keeps the first N (or a seeded random N when `seed` is set); `language` keeps rows whose
    ``language`` column equals it.
    """
    if max_conversations is not None and (not isinstance(max_conversations, int) or max_conversations < 1):
        raise InputError("max_conversations", f"must be a positive integer or None, got {max_conversations!r}")
    if seed is not None and not (is_count(seed) and seed < 2**32):
        raise InputError("seed", f"must be a whole number from 0 to 2**32-1, got {seed!r}")
    info: dict[str, Any] = {"source": source, "split": split, "revision": revision}
    on_hub = not (source == "synthetic" or source.startswith("synthetic:") or Path(source).exists())
    datasets = hub.import_datasets(source if on_hub else None)
    if source == "synthetic" or source.startswith("synthetic:"):
        from .synthetic import synthetic_path
        n = source.partition(":")[2] or "3000"
        if not n.isdigit() or int(n) < 1:
            raise InputError("dataset", f"synthetic:N needs a positive number of conversations, got {source!r}")
        path = synthetic_path(int(n))
        with quiet_progress():
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        info["note"] = SYNTHETIC_NOTE
    elif Path(source).exists():
        if Path(source).is_file() and split != "train":
            raise InputError("split", f"a single local file has only the `train` split, got {split!r}; drop --split")
        with quiet_progress():
            ds = _load_local(Path(source), split)
        info["note"] = f"local {'folder' if Path(source).is_dir() else 'file'}"
    else:
        ds = hub.load_dataset(source, split=split, revision=revision, token=token, streaming=streaming)
        info["note"] = "HuggingFace hub" + (" (streamed)" if streaming else "")
    if isinstance(ds, datasets.IterableDataset):
        rows = ds.take(max_conversations) if max_conversations and seed is None else ds
        ds = datasets.Dataset.from_list(list(rows))
    if language is not None:
        if "language" not in ds.column_names:
            raise InputError("language", f"this dataset has no `language` column (columns: {ds.column_names}); drop the filter")
        with quiet_progress():
            ds = ds.filter(lambda langs: [x == language for x in langs], input_columns="language", batched=True)
    if max_conversations is not None and max_conversations < len(ds):
        with quiet_progress():
            ds = ds.shuffle(seed=seed).select(range(max_conversations)) if seed is not None else ds.select(range(max_conversations))
    if len(ds) == 0:
        raise DatasetError(f"dataset {source}: has no conversations" + (f" in language {language!r}" if language else "")
                           + "; check the split, the language filter or the file")
    info.update(conversations=len(ds), fingerprint=getattr(ds, "_fingerprint", None),
                max_conversations=max_conversations, seed=seed, language=language)
    return ds, info


def _load_local(path: Path, split: str):
    import datasets

    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict) and split not in ds:
                raise InputError("split", f"{path} has splits {list(ds)}, not {split!r}")
            return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        try:
            return datasets.load_dataset(str(path), split=split)
        except Exception as exc:    # noqa: BLE001  (no data files, unknown split, unreadable files)
            raise InputError("dataset", f"folder {path} could not be read ({type(exc).__name__}: "
                                        f"{' '.join(str(exc).split())[:200]})") from exc
    if path.stat().st_size == 0:
        raise DatasetError(f"dataset {path}: the file is empty; it needs one conversation per row")
    builders = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
    builder = builders.get(path.suffix.lower())
    if builder is None:
        raise InputError("dataset", f"{path} has an unknown extension; use json, jsonl, parquet, csv, arrow or a save_to_disk folder")
    if builder == "arrow":
        return datasets.Dataset.from_file(str(path))
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:
        raise InputError("dataset", f"{path} could not be read as {builder} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return ds   # a CSV holds conversations as JSON strings: request_lengths decodes and checks them


def detect_schema(columns) -> str:
    """The chat schema from a dataset's columns (see the module docstring)."""
    found = [name for name, (col, _, _) in SCHEMAS.items() if col in columns]
    if not found:
        raise InputError("schema", f"no conversation column found; expected one of "
                                   f"{[c for c, _, _ in SCHEMAS.values()]}, the dataset has {list(columns)}")
    return found[0]


# ---------------------------------------------------------------- requests

def request_lengths(ds, tokenizer, *, schema: str | None = None, turn_policy: str = "every",
                    add_special_tokens: bool = False, num_proc: int | None = None,
                    batch_size: int = 1000, template=None) -> tuple[pd.DataFrame, dict]:
    """Per-request table (conversation, turn, input_tokens, output_tokens) plus skip counts.

    Batched ``Dataset.map`` over Arrow batches with `num_proc` workers (default: all cores);
    datasets' own progress bar shows progress. `template` (from `load_chat_template`) counts each
    request's input through the model's chat template instead of summing content tokens.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = schema or detect_schema(ds.column_names)
    if schema not in SCHEMAS:
        raise InputError("schema", f"unknown schema {schema!r}; choose from {list(SCHEMAS)}")
    if turn_policy not in TURN_POLICIES:
        raise InputError("turn_policy", f"must be one of {TURN_POLICIES}, got {turn_policy!r}")
    column, role_key, text_key = SCHEMAS[schema]
    if column not in ds.column_names:
        raise InputError("schema", f"schema {schema} needs column `{column}`; the dataset has {ds.column_names}")
    # Check the schema here, before any worker starts (DESIGN trap 13: an error inside the pool can hang).
    keys = message_keys(ds.data.schema.field(column).type, role_key, text_key)
    if keys is None:
        ds = _normalise(ds, column, role_key, text_key)   # in this process: bad rows raise here, named
        keys = role_key, text_key
    role_key, text_key = keys
    if pc.sum(pc.list_value_length(ds.data.column(column))).as_py() in (None, 0):
        raise InputError("dataset", f"every conversation is empty (column `{column}` holds no messages); "
                                    "check the file or the split")
    _check_num_proc(num_proc)
    num_proc = num_proc or os.cpu_count() or 1
    num_proc = max(1, min(num_proc, len(ds) // batch_size or 1))
    if template is not None and add_special_tokens:
        raise InputError("chat_template", "the template already adds the special tokens; drop add_special_tokens (--special-tokens)")
    fn = BatchLengths(tokenizer, role_key, text_key, column, turn_policy, add_special_tokens, template)
    out = ds.select_columns([column]).with_format("arrow").map(
        fn, batched=True, batch_size=batch_size, with_indices=True, num_proc=num_proc,
        remove_columns=[column], desc="tokenizing", new_fingerprint=_fingerprint_of(ds, fn),
        keep_in_memory=True, load_from_cache_file=False)  # our Parquet cache is the one cache
    table = out.with_format("arrow")[:]
    errors = table["error"].drop_null()
    if len(errors):
        raise InputError("dataset", f"could not be tokenized ({errors[0].as_py()})")
    counts = {k: int(pc.sum(table[k]).as_py() or 0) for k in BatchLengths.COUNTERS}
    if counts["messages"] == 0:
        raise InputError("dataset", f"every conversation is empty (column `{column}` holds no messages); "
                                    "check the file or the split")
    parents = pc.list_parent_indices(table["input_tokens"])
    requests = pa.table({
        "conversation": pc.take(table["conversation"], parents),
        "turn": pc.list_flatten(table["turn"]),
        "input_tokens": pc.list_flatten(table["input_tokens"]),
        "output_tokens": pc.list_flatten(table["output_tokens"]),
    }).to_pandas()
    counts.update(conversations=len(ds), requests=len(requests), schema=schema, turn_policy=turn_policy,
                  **counting_policy(add_special_tokens, template))
    return requests, counts


def counting_policy(add_special_tokens: bool, template=None) -> dict:
    """How tokens were counted, as every workload sidecar states it (``counts.special_tokens``, ``counts.chat_template``)."""
    return {"special_tokens": "counted" if add_special_tokens else ("in the template" if template else "not counted"),
            "chat_template": f"applied to inputs ({template.name})" if template else "not applied"}


def _check_num_proc(num_proc) -> None:
    if num_proc is not None and not is_count(num_proc, 1):
        raise InputError("num_proc", f"must be a whole number >= 1 (or unset for all cores), got {num_proc!r}")


def _fingerprint_of(ds, fn) -> str:
    key = json.dumps([getattr(ds, "_fingerprint", None), fn.key()], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


ROLE_KEYS, TEXT_KEYS = ("role", "from"), ("content", "value")


def message_keys(arrow_type, role_key: str, text_key: str) -> tuple[str, str] | None:
    """(role key, text key) when a conversation column is a list of {role, text} string structs
    (either naming: role/content or from/value), else None (the rows need normalising first)."""
    import pyarrow as pa

    if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)) \
            or not pa.types.is_struct(arrow_type.value_type):
        return None
    fields = {f.name: f.type for f in arrow_type.value_type}
    role = next((k for k in (role_key, *ROLE_KEYS) if k in fields), None)
    text = next((k for k in (text_key, *TEXT_KEYS) if k in fields), None)
    if role is None or text is None:
        return None
    strings = (pa.types.is_string(fields[role]) or pa.types.is_large_string(fields[role])) and \
              (pa.types.is_string(fields[text]) or pa.types.is_large_string(fields[text]))
    return (role, text) if strings else None


def _normalise(ds, column: str, role_key: str, text_key: str):
    """Rewrite each conversation as a list of {role_key: str, text_key: str}, raising an
    `InputError` that names the first bad row. Accepts role/content or from/value, null content
    (an empty message) and OpenAI-style list content (its text parts, joined by newlines)."""
    import datasets

    def fix(rows, indices):
        out = []
        for conversation, row in zip(rows, indices):
            out.append([_message(m, f"row {row + 1}: {column}[{k}]", role_key, text_key)
                        for k, m in enumerate(_conversation(conversation, f"row {row + 1}: {column}"))])
        return {column: out}

    features = datasets.Features({column: datasets.List({role_key: datasets.Value("string"),
                                                          text_key: datasets.Value("string")})})
    with quiet_progress():
        return ds.select_columns([column]).map(fix, input_columns=column, with_indices=True, batched=True,
                                               features=features, keep_in_memory=True, load_from_cache_file=False)


@contextlib.contextmanager
def quiet_progress():
    """No datasets progress bars in the block (quick local steps: a bad file then gets one clean error line)."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _conversation(value, where: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)       # a conversation stored as a JSON string
        except ValueError as cause:
            raise InputError(f"dataset {where}", "is a string, not a list of messages "
                                                 "[{role, content}, ...]") from cause
    if not isinstance(value, list):
        raise InputError(f"dataset {where}", f"must be a list of messages [{{role, content}}, ...], got {type(value).__name__}")
    return value


def _message(message, where: str, role_key: str, text_key: str) -> dict:
    if not isinstance(message, dict):
        raise InputError(f"dataset {where}", f"must be a message {{role, content}}, got {type(message).__name__} {str(message)[:40]!r}")
    role = next((message[k] for k in (role_key, *ROLE_KEYS) if k in message), None)
    if not isinstance(role, str):
        raise InputError(f"dataset {where}", f"has no text role (keys {sorted(message)}); messages need "
                                             "role/content or from/value")
    if not any(k in message for k in (text_key, *TEXT_KEYS)):
        raise InputError(f"dataset {where}", f"has no content (keys {sorted(message)}); messages need "
                                             "role/content or from/value")
    text = next(message[k] for k in (text_key, *TEXT_KEYS) if k in message)
    if isinstance(text, list):              # OpenAI-style content parts: keep the text ones
        parts = [p if isinstance(p, str) else p.get("text") for p in text
                 if isinstance(p, str) or (isinstance(p, dict) and p.get("type", "text") == "text")]
        if not all(isinstance(t, str) for t in parts):
            raise InputError(f"dataset {where}", "has a text part without a `text` string")
        text = "\n".join(parts)
    elif text is not None and not isinstance(text, str):
        raise InputError(f"dataset {where}", f"content must be text (or a list of text parts), got "
                                             f"{type(text).__name__} {text!r:.40}")
    return {role_key: role, text_key: text}



class BatchLengths:
    """Picklable batch function: Arrow batch of conversations -> per-conversation request lists (the
    request rule both engines run: `datasets.map` here, Ray Data's `map_batches` in scale.py)."""

    COUNTERS = ("messages", "skipped_empty_pairs", "unanswered_user_turns", "context_only_messages")

    def __init__(self, tokenizer, role_key, text_key, column, turn_policy, add_special_tokens, template=None):
        self.tokenizer, self.role_key, self.text_key, self.column = tokenizer, role_key, text_key, column
        self.turn_policy, self.add_special_tokens, self.template = turn_policy, add_special_tokens, template

    def key(self):
        tok = hashlib.sha256(self.tokenizer.to_str().encode()).hexdigest()[:16]
        return [tok, self.role_key, self.text_key, self.column, self.turn_policy, self.add_special_tokens,
                self.template.name if self.template else None]

    def __call__(self, batch, indices):
        # Errors come back as data: an exception raised in a datasets.map worker can hang the parent.
        try:
            out = self._lengths(batch, indices)
        except Exception as exc:     # noqa: BLE001  (reported by request_lengths as one line)
            out = {k: [[] for _ in indices] for k in ("turn", "input_tokens", "output_tokens")}
            out.update({k: [0] * len(indices) for k in self.COUNTERS}, conversation=list(indices))
            out["error"] = [f"{type(exc).__name__}: {exc}"] * len(indices)
            return out
        out["error"] = [None] * len(indices)
        return out

    def _lengths(self, batch, indices):
        import pyarrow as pa

        col = batch[self.column]
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        col = col.fill_null(pa.scalar([], type=col.type)) if col.null_count else col
        offsets = np.asarray(col.offsets) - col.offsets[0].as_py()
        messages = col.flatten()
        try:
            roles = messages.field(self.role_key)
            texts = messages.field(self.text_key)
        except KeyError as cause:
            raise InputError("schema", f"messages need fields `{self.role_key}` and `{self.text_key}`; "
                                       f"they have {[f.name for f in messages.type]}") from cause
        roles = np.asarray(roles.to_pylist(), dtype=object)
        text_list = texts.to_pylist()
        empty = np.array([not t for t in text_list], dtype=bool)
        encodings = self.tokenizer.encode_batch_fast([t or "" for t in text_list],
                                                     add_special_tokens=self.add_special_tokens)
        lens = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        lowered = np.char.lower(roles.astype(str))
        is_user = np.isin(lowered, list(USER_ROLES))
        is_assistant = np.isin(lowered, list(ASSISTANT_ROLES))
        prompt_tokens = None
        if self.template is not None:
            kinds = np.where(is_user, "user", np.where(is_assistant, "assistant",
                                                       np.where(lowered == "system", "system", "other")))

            def prompt_tokens(last, first):   # rendered prompt of messages first..last, per request
                return np.array([self.template.count(kinds[a:b + 1], text_list[a:b + 1]) for a, b in zip(first, last)],
                                dtype=np.int64)
        return _requests_per_conversation(offsets, lens, is_user, is_assistant, empty, indices, self.turn_policy,
                                          prompt_tokens)


def _requests_per_conversation(offsets, lens, is_user, is_assistant, empty, indices, turn_policy, prompt_tokens=None):
    """Vectorised seed rule over a batch: message arrays plus conversation offsets -> per-conversation lists.

    `prompt_tokens(last, first)`, when given, replaces the running content sums as the inputs: the
    templated prompt length of messages first..last (user message `last`, its conversation's first).
    """
    n_conv = len(offsets) - 1
    sizes = np.diff(offsets)
    conv_of = np.repeat(np.arange(n_conv), sizes)
    cum = np.cumsum(lens)
    before = np.concatenate([[0], cum])[offsets[:-1]]          # tokens before each conversation
    context = cum - before[conv_of]                               # tokens so far, including this message
    same = conv_of[:-1] == conv_of[1:]
    pair = np.flatnonzero(is_user[:-1] & is_assistant[1:] & same)
    first_pair = np.concatenate([[True], conv_of[pair][1:] != conv_of[pair][:-1]]) if len(pair) else np.zeros(0, bool)
    turn = np.arange(len(pair)) - np.maximum.accumulate(np.where(first_pair, np.arange(len(pair)), 0)) if len(pair) else pair
    skipped = empty[pair] | empty[pair + 1]
    keep = ~skipped & ((turn == 0) if turn_policy == "first" else True)
    sel = pair[keep]
    last = offsets[1:][sizes > 0] - 1
    inputs = context[sel] if prompt_tokens is None else prompt_tokens(sel, offsets[conv_of[sel]])
    out_in = np.split(inputs, np.searchsorted(conv_of[sel], np.arange(1, n_conv)))
    out_out = np.split(lens[sel + 1], np.searchsorted(conv_of[sel], np.arange(1, n_conv)))
    out_turn = np.split(turn[keep], np.searchsorted(conv_of[sel], np.arange(1, n_conv)))

    def per_conv(message_index):
        return np.bincount(conv_of[message_index], minlength=n_conv).tolist()

    return {
        "conversation": list(indices),
        "turn": [t.tolist() for t in out_turn],
        "input_tokens": [a.tolist() for a in out_in],
        "output_tokens": [a.tolist() for a in out_out],
        "messages": sizes.tolist(),
        "skipped_empty_pairs": per_conv(pair[skipped]),
        "unanswered_user_turns": per_conv(last[is_user[last]]),
        "context_only_messages": per_conv(np.flatnonzero(~(is_user | is_assistant))),
    }


# ---------------------------------------------------------------- cached front door

def chat_requests(source: str, *, tokenizer: str = DEFAULT_TOKENIZER, split: str = "train",
                  revision: str | None = None, token: str | None = None, streaming: bool = False,
                  schema: str | None = None, max_conversations: int | None = None, seed: int | None = None,
                  language: str | None = None, turn_policy: str = "every", add_special_tokens: bool = False,
                  chat_template: bool = False, num_proc: int | None = None, cache: bool = True) -> tuple[pd.DataFrame, dict]:
    """Load, tokenize and return the per-request table with its provenance, cached as Parquet.

    The cache key covers the dataset (id, split, revision, fingerprint), the tokenizer (name and
    content hash) and every option; a second call with the same key reads
    ``outputs/cache/requests/<key>.parquet`` and tokenizes nothing (``info["cache"] == "hit"``).
    """
    _check_num_proc(num_proc)
    if chat_template and add_special_tokens:   # before any loading: both cannot hold
        raise InputError("chat_template", "the template already adds the special tokens; drop add_special_tokens (--special-tokens)")
    ds, ds_info = load_chats(source, split=split, revision=revision, token=token, streaming=streaming,
                             max_conversations=max_conversations, seed=seed, language=language)
    tok, tok_info = load_tokenizer(tokenizer, token=token)
    template = load_chat_template(tokenizer, token=token) if chat_template else None
    options = {"schema": schema or detect_schema(ds.column_names), "turn_policy": turn_policy,
               "add_special_tokens": add_special_tokens, "chat_template": template.name if template else None}
    key_doc = {"dataset": {k: ds_info[k] for k in ("source", "split", "revision", "fingerprint", "max_conversations",
                                                    "seed", "language")},
               "tokenizer": tok_info["sha256_16"], "options": options}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:20]
    path = outputs_dir() / "cache" / "requests" / f"{key}.parquet"
    if cache and path.is_file() and path.with_suffix(".json").is_file():
        info = json.loads(path.with_suffix(".json").read_text())
        return pd.read_parquet(path), {**info, "cache": "hit", "cache_file": str(path)}
    requests, counts = request_lengths(ds, tok, schema=options["schema"], turn_policy=turn_policy,
                                       add_special_tokens=add_special_tokens, num_proc=num_proc, template=template)
    info = {"dataset": ds_info, "tokenizer": tok_info, "counts": counts, "cache_key": key}
    if cache:
        write_json(path.with_suffix(".json"), info)   # the Parquet file last: it marks the entry complete
        atomic_write(path, lambda tmp: requests.to_parquet(tmp, index=False))
    return requests, {**info, "cache": "miss" if cache else "off", "cache_file": str(path) if cache else None}
