"""The SLO engine's computation core: SLIs, error budgets, burn rates and SLO state per product.

Plain data in, plain data out (no Airflow, no database); see docs/slo.md.
"""

from dag_factory.slo.engine import (
    AT_RISK, BREACHED, NO_DATA, OK, BurnRate, BurnRates, ErrorBudget, FreshnessSLI,
    QualityPassRateSLI, RatioSLI, SloStatus, SloTargets, SuccessRateSLI, burn_rate, compute,
    error_budget,
)
from dag_factory.slo.history import RunRecord

__all__ = [
    "AT_RISK", "BREACHED", "NO_DATA", "OK", "BurnRate", "BurnRates", "ErrorBudget",
    "FreshnessSLI", "QualityPassRateSLI", "RatioSLI", "RunRecord", "SloStatus", "SloTargets",
    "SuccessRateSLI", "burn_rate", "compute", "error_budget",
]
