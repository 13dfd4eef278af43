"""Plan options (`melange-nb plan`, `plan.plan_trace`), checked before the trace is read."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from .common import MAX_WORKERS, Schema, checked, one_of, optional_seconds, parser_check, validate, whole


def _plan_parsers():
    from .. import plan
    return plan


class PlanOptions(Schema):
    """What `melange-nb plan` (``plan.plan_trace``) is asked to do, checked before the trace is read."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, title="melange-nb plan options")
    solver: Annotated[Literal["exact", "melange"], one_of(("exact", "melange"))] = "exact"
    smoothing: Annotated[Any, parser_check(lambda v: _plan_parsers().parse_smoothing(v))] = Field(
        None, description="hold:N (keep each mix N windows) or calm:N (scale down after N calm windows)")
    window: Annotated[Any, parser_check(lambda v: _plan_parsers().parse_window(v))] = Field(
        "5min", description="a number and a unit, e.g. 5min, 300s, 1h")
    workers: Annotated[int, checked(whole, minimum=1, maximum=MAX_WORKERS)] = Field(1, ge=1, le=MAX_WORKERS)
    overflow: Annotated[Literal["drop", "clip", "open"], one_of(("drop", "clip", "open"))] = "drop"
    slice_factor: Annotated[int, checked(whole, minimum=1, what="a whole number >= 1 (slices per bucket)")] = Field(1, ge=1)
    time_limit: Annotated[float | None, checked(optional_seconds)] = Field(None, gt=0)


def check_plan_options(**options: Any) -> PlanOptions:
    """`PlanOptions` from keywords; the first bad one is an `InputError` naming it."""
    return validate(PlanOptions, {k: v for k, v in options.items() if v is not None}, where="")
