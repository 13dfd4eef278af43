"""Price files (``params/prices/*.yaml``): GPU name -> on-demand price per GPU-hour, with
file-wide provider, region, date and source."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Mapping

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from ..errors import InputError
from .common import UNKNOWN, Fact, Schema, checked, fact_text, inherit, number


PRICE_FACTS = ("provider", "region", "date", "source")


def _systems(value: Any) -> list[str]:
    value = value or []
    if not isinstance(value, list):
        raise InputError("", "must be a list of system names, e.g. [h100_sxm]")
    return [str(s) for s in value]


def _price_date(value: Any) -> str:
    if fact_text(value) == UNKNOWN:
        raise InputError("", "is missing; say when the price was read (e.g. 2026-11-25)")
    return fact_text(value)


class PriceEntry(Schema):
    """One GPU's on-demand price per GPU-hour; provider, region, date and source default to the file's."""

    model_config = ConfigDict(extra="ignore")
    NOT_MAPPING: ClassVar[str] = "is missing; give the on-demand price per GPU-hour in USD"
    usd_per_hour: Annotated[float, checked(number, positive=True, what="a positive number")] = Field(
        gt=0, description="on-demand price per GPU-hour in USD")
    provider: Fact = UNKNOWN
    region: Fact = UNKNOWN
    date: Annotated[str, BeforeValidator(_price_date)] = Field(
        UNKNOWN, validate_default=True, description="when the price was read, e.g. 2026-11-25")
    source: Fact = Field(UNKNOWN, description="where the price was published (a URL)")
    systems: Annotated[list[str], BeforeValidator(_systems, json_schema_input_type=list[str] | None)] = Field(
        default_factory=list, description="aiconfigurator system names this price covers, e.g. [h100_sxm]")
    note: Annotated[str, BeforeValidator(lambda v: str(v or ""))] = ""

    @model_validator(mode="before")
    @classmethod
    def _priced(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "usd_per_hour" not in data:
            raise InputError("usd_per_hour", "is missing; give the on-demand price per GPU-hour in USD")
        return data


class PriceFile(Schema):
    """A price file (``params/prices/*.yaml``): GPU name -> price, with file-wide defaults."""

    model_config = ConfigDict(extra="ignore", title="melange-nb price file")
    provider: Fact = UNKNOWN
    region: Fact = UNKNOWN
    date: Fact = Field(UNKNOWN, description="when the prices were read, e.g. 2026-11-25")
    source: Fact = Field(UNKNOWN, description="where they were published (a URL)")
    unit: Fact = Field(UNKNOWN, description="e.g. USD per GPU-hour, on demand")
    gpus: dict[str, PriceEntry] = Field(min_length=1, description="GPU name -> {usd_per_hour, systems, note, ...}")

    @model_validator(mode="before")
    @classmethod
    def _file_wide_facts(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("gpus"), Mapping) or not data["gpus"]:
            raise InputError("", "must be a YAML mapping with a non-empty `gpus` mapping NAME -> {usd_per_hour, ...}")
        return {**data, "gpus": {str(k): v for k, v in inherit(data["gpus"], data, PRICE_FACTS).items()}}
