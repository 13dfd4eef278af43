"""Simulate options of a run or a sweep point (`attainment.check_plan`): the generated request stream."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from .common import Schema, checked, number, one_of, parser_check, whole


def _arrival(value: Any) -> None:
    from ..simulate import parse_arrival
    parse_arrival(value)


def _sim_switch(value: Any) -> Any:
    """``true`` = the default options, ``false``/null = no simulation."""
    return {} if value is True else (None if value is False else value)


class SimulateOptions(Schema):
    """How a run or a sweep point simulates its plan (`attainment.check_plan`): a generated request stream."""

    model_config = ConfigDict(extra="forbid", title="simulate options")
    NOT_MAPPING: ClassVar[str] = "must be a mapping of duration_s, arrival, seed, routing (or true for the defaults)"
    UNKNOWN_KEY: ClassVar[str] = "is not a simulate option; known: ['arrival', 'duration_s', 'routing', 'seed']"
    duration_s: Annotated[float, checked(number, positive=True, what="simulated seconds per point, e.g. 600")] = Field(
        600.0, gt=0, description="simulated seconds of arrivals")
    arrival: Annotated[str, parser_check(_arrival)] = Field(
        "poisson", description="poisson, gamma:CV (bursty for CV > 1) or constant")
    seed: Annotated[int, checked(whole)] = Field(0, ge=0, description="seed of the stream and the routing draws")
    routing: Annotated[Literal["least", "round-robin"], one_of(("least", "round-robin"))] = Field(
        "least", description="replica choice within a GPU type")


Simulate = Annotated[SimulateOptions | None, BeforeValidator(_sim_switch, json_schema_input_type=SimulateOptions | bool | None)]
TargetAttainment = Annotated[float | None, checked(lambda v, where: None if v is None else number(
    v, where, positive=True, maximum=1.0, what="a share of requests in (0, 1], e.g. 0.99"))]
