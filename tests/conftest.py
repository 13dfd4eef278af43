"""Shared fixtures: project paths, the shared test data folder, the seed's GPU profiles."""
from pathlib import Path

import pytest

from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.profiles import load_gpus
from melange_nb.workload import labelled_matrix

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (only present on the project's machines)")
    return SHARED_DATA


@pytest.fixture
def seed_gpus():
    return load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")


@pytest.fixture
def arena_csv() -> Path:
    return WORKLOADS_DIR / "arena-seed.csv"


def matrix(values, index=("s", "l"), columns=("s", "l")):
    """A labelled input x output matrix for hand-made cases."""
    return labelled_matrix(values, list(index), list(columns), field="test")


def page_problems(html: str, *, with_code: bool = False) -> list[str]:
    """What a shared HTML page must not show: Python reprs, temporary or absolute local paths, warnings
    (stderr boxes, "Warning"), anything fetched from the network, "1 GPUs". Embedded images are skipped
    (base64 can spell anything), and so are stylesheets; `with_code`: a page with code, where reprs are
    legitimate. The returned strings say what was found and where."""
    import re

    from melange_nb.config import PROJECT_ROOT

    text = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=\s]+", "", html)
    text = re.sub(r"<style[^>]*>.*?</style>", "", text, flags=re.S)
    checks = {"numpy repr": r"np\.(int|float|bool)\w*\(", "dict repr": r"\{'|\{&#x27;|\{&#39;",
              "list repr": r"\['|\[&#x27;|\[&#39;", "None shown": r"\bNone\b", "temporary path": r"\.tmp\b",
              "absolute path": r"(?<![\w.:/])/(work|tmp|root|home|Users)/|" + re.escape(str(PROJECT_ROOT)),
              "stderr box": r"application/vnd\.jupyter\.stderr", "warning": r"Warning",
              "network fetch": r"""(src|href)=["']?(https?:)?//""", "plural": r"\b1 GPUs\b"}
    if with_code:   # code legitimately shows None, lists and dicts: check paths, warnings and the network only
        checks = {k: v for k, v in checks.items() if k in ("temporary path", "absolute path", "stderr box", "warning",
                                                           "network fetch")}
    found = []
    for what, pattern in checks.items():
        for m in re.finditer(pattern, text):
            found.append(f"{what}: …{text[max(0, m.start() - 60):m.end() + 60]}…")
    return found


# ---------------------------------------------------------------- AIPerf against tests/llm_test_server.py

AIPERF_BIN = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "aiperf"


def aiperf_or_skip() -> Path:
    """AIPerf's binary in .venv-bench (`make bench-client`; `make test` makes it), or skip the test."""
    if not AIPERF_BIN.exists():
        pytest.skip(f"AIPerf not installed at {AIPERF_BIN}: run `make bench-client` (make test does it)")
    return AIPERF_BIN


def aiperf_tokenizer(folder: Path):
    """The project's offline mistral-v1 tokenizer (Llama-2 style SentencePiece) saved as a Hugging Face folder,
    which AIPerf's --tokenizer loads, and a function counting tokens with it (what the test server sees)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from melange_nb.chats import load_tokenizer

    tok, _ = load_tokenizer()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    plain = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return lambda text: len(plain.encode(text, add_special_tokens=False).ids)


def aiperf_env() -> dict:
    """The environment AIPerf runs in here: without HF_HUB_OFFLINE (AIPerf's offline mode looks local paths up in
    the hub cache; a path needs none) and without telemetry."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    return env
