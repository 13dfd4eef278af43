"""Hugging Face hub access: tokenizers and datasets by name, failing fast and in one line offline.

Before a hub name is loaded, one TCP probe (``HUB_TIMEOUT`` seconds) tells whether the hub can
be reached; if not, the load runs with the libraries' offline switch on, so they use their caches
or fail at once instead of retrying for half a minute. Every hub error becomes one `DatasetError`
line saying what to do (gated: accept the terms and set HF_TOKEN; offline: use a local copy).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import DatasetError

HUB_TIMEOUT = 3.0   # seconds to reach the hub before treating it as offline


@contextlib.contextmanager
def hub_offline_unless_reachable(name: str | None):
    """Fail fast offline: if the HuggingFace hub cannot be reached within HUB_TIMEOUT seconds,
    run the block with HF_HUB_OFFLINE set, so the libraries use their caches (or fail at once)
    instead of retrying for half a minute. Local paths (`name` None or existing) skip the probe."""
    import sys

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if name is None or Path(name).exists() or offline or reachable():
        yield
        return
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    patched = []    # libraries imported before read the switch at import time: set their copies too
    for module, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_DATASETS_OFFLINE")):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, attr):
            patched.append((mod, attr, getattr(mod, attr)))
            setattr(mod, attr, True)
    try:
        yield
    finally:
        for mod, attr, value in patched:
            setattr(mod, attr, value)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reachable() -> bool:
    """True when a TCP connection to the hub (HF_ENDPOINT) opens within HUB_TIMEOUT; a proxy counts as reachable."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=HUB_TIMEOUT):
            return True
    except OSError:
        return False


def error_message(what: str, exc: BaseException, page: str | None = None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "gated" in text.lower() or "GatedRepo" in text or "401" in text or "403" in text:
        return (f"{what}: is gated on the HuggingFace hub; accept its terms at {page or 'its hub page'} and set "
                "HF_TOKEN (or pass token=) to a token with access")
    if isinstance(exc, ConnectionError) or "couldn't reach" in text.lower() or "offline" in text.lower() \
            or "LocalEntryNotFound" in text or "Name or service not known" in text:
        return (f"{what}: could not reach the HuggingFace hub (offline?) and no cached copy exists; use a local "
                "file or folder, or run once with network access")
    if "doesn't exist" in text or "not found" in text.lower() or "RepositoryNotFound" in text:
        return f"{what}: not found on the HuggingFace hub nor as a local path; check the name or the path"
    return f"{what}: could not be loaded ({' '.join(text.split())[:300]})"


def load_tokenizer(name: str, *, token: str | None = None, probe: bool = True):
    """``transformers.AutoTokenizer.from_pretrained(name)``; a hub failure is one `DatasetError` line.
    `probe`: check that the hub is reachable first (`hub_offline_unless_reachable`)."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")   # no "PyTorch was not found" line
    try:
        from transformers import AutoTokenizer
        with hub_offline_unless_reachable(name if probe else None):
            return AutoTokenizer.from_pretrained(name, token=token)
    except OSError as exc:
        raise DatasetError(error_message(f"tokenizer {name}", exc, f"https://huggingface.co/{name}")) from exc


def import_datasets(name: str | None):
    """The `datasets` module, imported with the offline switch on when `name` (a hub name, or None
    for local data) cannot be reached: the switch must come before the import to take effect."""
    with hub_offline_unless_reachable(name):
        import datasets
    return datasets


def load_dataset(source: str, *, split: str, revision: str | None, token: str | None, streaming: bool):
    """``datasets.load_dataset(source)`` from the hub; any failure is one `DatasetError` line."""
    import datasets

    try:
        with hub_offline_unless_reachable(source):
            return datasets.load_dataset(source, split=split, revision=revision, token=token, streaming=streaming)
    except Exception as exc:  # the hub raises many types; each becomes one clear line
        raise DatasetError(error_message(f"dataset {source}", exc, f"https://huggingface.co/datasets/{source}")) from exc
