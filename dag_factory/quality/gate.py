"""Run a Soda v4 contract on a DuckDB connection and turn the result into plain data."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from dag_factory.operator_base import DeterministicFailure
from dag_factory.quality.contract import DATA_SOURCE


class QualityGateFailed(DeterministicFailure, RuntimeError):
    """The gate has failing checks (or Soda could not run the contract); nothing is published.

    Attributes:
        result: the :class:`GateResult`.
    """

    def __init__(self, product: str, result: "GateResult"):
        self.result = result
        lines = [f"product {product!r}: quality gate failed: {result.summary()}"]
        lines += [f"  - {c.describe()}" for c in result.checks if c.outcome == "failed"]
        lines += [f"  - Soda error: {e}" for e in result.errors]
        super().__init__("\n".join(lines))


@dataclass
class CheckOutcome:
    """One Soda check's result.

    Attributes:
        name: the check's display name; column: its column or None (dataset-level);
        type: Soda check type (missing, invalid, row_count, duplicate, ...);
        qualifier: Soda qualifier or None; level: ``fail`` or ``warn``;
        outcome: ``passed`` | ``warned`` | ``failed`` | ``not_evaluated``;
        value: the measured value the threshold was applied to (count or percent);
        threshold: the threshold in words; diagnostics: Soda's diagnostic metrics.
    """

    name: str
    column: str | None
    type: str
    qualifier: str | None
    level: str
    outcome: str
    value: float | int | None
    threshold: str
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f"column {self.column}" if self.column else "dataset"
        return (f"{self.name} [{self.type}, {where}]: measured {self.value}, "
                f"expected {self.threshold}")


@dataclass
class GateResult:
    """The gate's verdict: ``outcome`` is ``pass`` | ``warn`` | ``fail``."""

    outcome: str
    rows: int
    checks: list[CheckOutcome]
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """``{"passed": n, "warned": n, "failed": n, "not_evaluated": n}``."""
        out = {"passed": 0, "warned": 0, "failed": 0, "not_evaluated": 0}
        for check in self.checks:
            out[check.outcome] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        return (f"{c['passed']} passed, {c['warned']} warned, {c['failed']} failed"
                + (f", {c['not_evaluated']} not evaluated" if c["not_evaluated"] else "")
                + (f", {len(self.errors)} Soda error(s)" if self.errors else ""))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GateResult":
        return cls(outcome=data["outcome"], rows=data["rows"], errors=data.get("errors", []),
                   checks=[CheckOutcome(**c) for c in data["checks"]])


_OUTCOMES = {"PASSED": "passed", "WARN": "warned", "FAILED": "failed"}


def verify(con, contract_text: str, rows: int) -> GateResult:
    """Verify ``contract_text`` with Soda Core on the DuckDB connection ``con``.

    Returns:
        the :class:`GateResult`; Soda errors (a contract Soda cannot run) make it ``fail``.
    """
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    from soda_duckdb import DuckDBDataSource

    return verify_on(DuckDBDataSource.from_existing_cursor(con, name=DATA_SOURCE),
                     contract_text, rows)


def verify_on(data_source, contract_text: str, rows: int) -> GateResult:
    """Verify ``contract_text`` with Soda Core on an open Soda data source (any engine's
    ``DataSourceImpl`` with a connection; Soda leaves a connection it did not open open).

    Returns:
        the :class:`GateResult`; Soda errors (a contract Soda cannot run) make it ``fail``.
    """
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    from soda_core.common.yaml import ContractYamlSource
    from soda_core.contracts.contract_verification import ContractVerificationSession

    session = ContractVerificationSession.execute(
        contract_yaml_sources=[ContractYamlSource.from_str(contract_text)],
        data_source_impls=[data_source],
    )
    checks = []
    for contract_result in session.contract_verification_results:
        for result in contract_result.check_results:
            check = result.check
            threshold = check.threshold
            checks.append(CheckOutcome(
                name=check.name or check.type,
                column=check.column_name,
                type=check.type,
                qualifier=check.qualifier,
                level=getattr(threshold, "level", None) or "fail",
                outcome=_OUTCOMES.get(result.outcome.name, "not_evaluated"),
                value=_plain(result.threshold_value),
                threshold=_threshold_words(threshold),
                diagnostics={k: _plain(v) for k, v in (result.diagnostic_metric_values or {}).items()},
            ))
    errors = [line for line in session.get_errors_str().splitlines() if line.strip()] \
        if session.has_errors else []
    outcome = "fail" if errors or any(c.outcome == "failed" for c in checks) else (
        "warn" if any(c.outcome == "warned" for c in checks) else "pass")
    return GateResult(outcome=outcome, rows=rows, checks=checks, errors=errors)


def measure_columns(con, table: str, columns: list[str]) -> dict[str, Any]:
    """Row count and, per column, null and distinct counts of ``table`` (one query).

    Returns:
        ``{"rows": int, "columns": {name: {"nulls": int, "distinct": int}}}``.
    """
    from dag_factory.engines.duckdb import quote_ident

    parts = ["count(*)"]
    for name in columns:
        ident = quote_ident(name)
        parts += [f"count(*) - count({ident})", f"count(distinct {ident})"]
    values = con.execute(f"select {', '.join(parts)} from {table}").fetchone()
    return {"rows": values[0], "columns": {
        name: {"nulls": values[1 + 2 * i], "distinct": values[2 + 2 * i]}
        for i, name in enumerate(columns)}}


def _threshold_words(threshold) -> str:
    if threshold is None:
        return "no threshold"
    parts = [line for line in str(threshold).splitlines() if not line.startswith("level:")]
    return "; ".join(parts) or str(threshold)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
