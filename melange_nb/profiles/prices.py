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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import schemas
from ..errors import InputError
from ..files import read_yaml


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


def _shown(path: Path) -> str:
    """A price file as profiles record it: relative to the project when inside it (no local paths)."""
    from ..config import PROJECT_ROOT

    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def load_prices(path: str | Path) -> dict[str, Price]:
    """Read a price file (see the module docstring; `schemas.PriceFile`) into {GPU name: Price}."""
    path = Path(path)
    doc = read_yaml(path, "price file", "params/prices/runpod.yaml")
    prices = schemas.validate(schemas.PriceFile, doc, where=f"{path.name}:", root=f"price file {path}")
    return {name: Price(name, e.usd_per_hour, e.provider, e.region, e.date, e.source, file=_shown(path),
                        systems=tuple(e.systems), note=e.note)
            for name, e in prices.gpus.items()}


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
