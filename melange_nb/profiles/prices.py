"""GPU prices: on-demand $/hour per GPU, with provider, region, date and source (``params/prices/*.yaml``).

A price file::

    provider: RunPod                # defaults for every entry below; an entry may override any of them
    region: global
    date: "2026-11-25"              # when the price was read
    source: https://...             # where it was published
    unit: USD per GPU-hour, on demand
    gpus:
      H100: {usd_per_hour: 4.18, systems: [h100_sxm], note: ...}   # systems: aiconfigurator names it prices

A GPU is found by its name, else by one of its ``systems``. A GPU without a price is an error
naming it (never a silent default).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..files import read_yaml

_FACTS = ("provider", "region", "date", "source")


@dataclass(frozen=True)
class Price:
    """One GPU's on-demand price per GPU-hour and where it comes from."""

    name: str
    usd_per_hour: float
    provider: str
    region: str
    date: str
    source: str
    file: str
    systems: tuple[str, ...] = ()
    note: str = ""

    def meta(self) -> dict[str, Any]:
        """The profile-file ``price`` entry: file, provider, region, date, source, price per GPU."""
        out = {"file": self.file, "provider": self.provider, "region": self.region, "date": self.date,
               "source": self.source, "usd_per_gpu_hour": self.usd_per_hour}
        if self.note:
            out["note"] = self.note
        return out


def _text(value) -> str:
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return "unknown" if value in (None, "") else str(value)


def _shown(path: Path) -> str:
    """A price file as profiles record it: relative to the project when inside it (no local paths)."""
    from ..config import PROJECT_ROOT

    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read a price file (see the module docstring) into {GPU name: Price}; every field checked."""
    path = Path(path)
    doc = read_yaml(path, "price file", "params/prices/runpod.yaml")
    where = f"price file {path}"
    if not isinstance(doc, Mapping) or not isinstance(doc.get("gpus"), Mapping) or not doc["gpus"]:
        raise InputError(where, "must be a YAML mapping with a non-empty `gpus` mapping NAME -> {usd_per_hour, ...}")
    prices = {}
    for name, entry in doc["gpus"].items():
        field_ = f"{path.name}: gpus.{name}"
        if not isinstance(entry, Mapping) or "usd_per_hour" not in entry:
            raise InputError(f"{field_}.usd_per_hour", "is missing; give the on-demand price per GPU-hour in USD")
        value = entry["usd_per_hour"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise InputError(f"{field_}.usd_per_hour", f"must be a positive number, got {value!r}")
        facts = {k: _text(entry.get(k, doc.get(k))) for k in _FACTS}
        if facts["date"] == "unknown":
            raise InputError(f"{field_}.date", "is missing; say when the price was read (e.g. 2026-11-25)")
        systems = entry.get("systems") or []
        if not isinstance(systems, list):
            raise InputError(f"{field_}.systems", "must be a list of system names, e.g. [h100_sxm]")
        prices[str(name)] = Price(str(name), float(value), file=_shown(path), systems=tuple(map(str, systems)),
                                  note=str(entry.get("note", "")), **facts)
    return prices


def find_price(prices: Mapping[str, Price], name: str, system: str | None = None, *, field: str = "prices") -> Price:
    """The price for GPU `name` (or, failing that, the entry listing `system`); none is an error naming it."""
    if name in prices:
        return prices[name]
    for price in prices.values():
        if system and system in price.systems:
            return price
    files = sorted({p.file for p in prices.values()})
    raise InputError(field, f"no price for GPU {name!r}" + (f" (system {system})" if system else "")
                     + f" in {', '.join(Path(f).name for f in files) or 'the price file'}; "
                     f"add it there or pick one of {sorted(prices)}")


def merge_prices(paths: Sequence[str | Path]) -> dict[str, Price]:
    """Several price files as one mapping; a GPU priced in two files is an error (which one to trust?)."""
    out: dict[str, Price] = {}
    for path in paths:
        for name, price in load_prices(path).items():
            if name in out:
                raise InputError(f"price file {path}", f"prices {name!r} again (already in {out[name].file}); keep one")
            out[name] = price
    return out
