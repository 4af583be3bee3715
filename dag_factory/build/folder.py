"""Build every DAG of a products folder; what the loader module in ``products/`` calls."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from dag_factory.alerts import AlertSettings, has_alerts
from dag_factory.build.dag import build_product_dag
from dag_factory.build.invalid import build_invalid_dag, placeholder_dag_id
from dag_factory.spec.errors import SpecError, SpecIssue
from dag_factory.spec.loading import load_products

log = logging.getLogger("dag_factory.loader")


def build_dags(folder: Path | str) -> dict:
    """One DAG per product file of ``folder``: the product's DAG, or its error placeholder;
    plus the freshness watchdog ``dataproducts_slo_watchdog`` when a valid product has
    ``alerts`` and ``slo.freshness`` and ``[dataproducts] api_conn_id`` is set
    (:mod:`dag_factory.build.watchdog`).

    Errors are logged (they show in the DAG processor log). A file whose DAG fails to build
    for an unexpected reason becomes a placeholder too; nothing here raises for one bad file.

    Returns:
        dag_id -> DAG.
    """
    folder = Path(folder)
    collecting = gc.isenabled()
    gc.disable()  # everything built stays referenced: collecting mid-build only costs time
    try:
        return _build_dags(folder)
    finally:
        if collecting:
            gc.enable()


def _build_dags(folder: Path) -> dict:
    result = load_products(folder)
    majors = {name: p.spec.major_version for name, p in result.products.items()}
    alert_settings = (AlertSettings.read()  # once for the folder, not twice per product
                      if any(has_alerts(p.spec) for p in result.products.values()) else None)
    dags: dict = {}
    errors = dict(result.errors)
    failed: set[str] = set()
    for name, product in result.products.items():
        try:
            dags[name] = build_product_dag(product, majors, folder, alert_settings)
        except Exception as exc:  # noqa: BLE001 - isolate one product's failure from the rest
            log.exception("product file %s: building the DAG failed", product.path)
            errors[product.path] = SpecError([SpecIssue(str(product.path), 1, 1, "",
                                                        f"building the DAG failed: {exc}")])
            result.claimed_names[product.path] = name
            dags.pop(name, None)
            failed.add(name)
    for path, error in sorted(errors.items()):
        log.error("invalid product file %s:\n%s", path, error)
        dag_id = placeholder_dag_id(path, result.claimed_names.get(path), set(dags))
        dags[dag_id] = build_invalid_dag(dag_id, path, error)
    built = [p.spec for n, p in result.products.items() if n not in failed]
    _add_watchdog(dags, built)
    return dags


def _add_watchdog(dags: dict, specs: list) -> None:
    """Add the freshness watchdog DAG when it is wanted; never fails the folder's load."""
    from dag_factory.build.watchdog import WATCHDOG_DAG_ID, build_watchdog_dag, wants_watchdog

    try:
        if not wants_watchdog(specs):
            return
        if WATCHDOG_DAG_ID in dags:
            log.error("no freshness watchdog: a product file claims the dag_id %s",
                      WATCHDOG_DAG_ID)
            return
        dag = build_watchdog_dag(specs)
    except Exception:  # noqa: BLE001 - the products load whatever happens to the watchdog
        log.exception("building the freshness watchdog DAG %s failed", WATCHDOG_DAG_ID)
        return
    if dag is not None:
        dags[WATCHDOG_DAG_ID] = dag
