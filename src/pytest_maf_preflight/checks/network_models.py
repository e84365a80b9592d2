"""Definitions of the network and composite check types.

These load and validate now, so every documented config is accepted; their runners are not
built yet, and a check of these types ends as ``error`` (the gate fails closed) until they are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import CheckType, Definition


class ApiDefinition(Definition):
    url: str | None = None
    base_url: str | None = None
    endpoint: str | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    json_body: Any = None
    body: str | None = None
    verify_tls: bool = True
    follow_redirects: bool = True
    expected_status: int | list[int] = 200
    expected_headers: dict[str, str] = Field(default_factory=dict)
    body_contains: str | None = None
    body_regex: str | None = Field(default=None, json_schema_extra={"format": "regex"})
    json_values: dict[str, Any] = Field(default_factory=dict, alias="json",
                                        description="Dotted JSON path -> expected value")
    max_latency_ms: float | None = Field(default=None, gt=0)
    timeout_ms: float | None = Field(default=None, gt=0,
                                     description="Original format's request timeout")


class DatabaseDefinition(Definition):
    url: str = Field(min_length=1, description="sqlite:///, postgresql://, redis:// or tcp://")
    query: str | None = None
    expected_rows: int | None = Field(default=None, ge=0)
    expected_value: str | int | float | bool | None = None


class IntegrationDefinition(Definition):
    checks: list[str] = Field(min_length=1)


class PerformanceDefinition(Definition):
    request: ApiDefinition | None = None
    argv: list[str] | None = None
    iterations: int = Field(default=10, ge=1, le=100_000)
    concurrency: int = Field(default=1, ge=1, le=1000)
    p50_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    max_ms: float | None = Field(default=None, gt=0)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)


CHECK_TYPES = [
    CheckType("api", ApiDefinition, None, "HTTP(S) request with expectations"),
    CheckType("database", DatabaseDefinition, None, "sqlite, postgresql, redis or tcp probe"),
    CheckType("integration", IntegrationDefinition, None, "A group of other checks"),
    CheckType("performance", PerformanceDefinition, None, "Latency and error-rate budgets"),
]
