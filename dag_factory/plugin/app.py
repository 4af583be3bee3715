"""The ``dataproducts`` Airflow plugin: JSON API and SLO page, mounted at ``/dataproducts``.

Every route requires an authenticated Airflow user (Airflow's own ``get_user`` dependency:
no token or cookie -> 401) and shows only products whose DAG the auth manager lets that user
read (a product the user cannot read -> 404 on its route, absent from lists).
Registered through the ``airflow.plugins`` entry point, so ``pip install`` is enough.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.plugins_manager import AirflowPlugin

from dag_factory import __version__
from dag_factory.plugin import backfill, page
from dag_factory.plugin.status import CONTRACT_FORMATS, collect, contract_of, gc_paused, to_jsonable

URL_PREFIX = "/dataproducts"

app = FastAPI(
    title="Data products",
    version=__version__,
    description="SLO status of the data products built by airflow-dataproducts: freshness, "
                "success rate and quality pass rate with error budgets and burn rates, recent "
                "runs, quality gate history and invalid product files, and backfill estimates "
                "from each product's pacing and median run time. Every route needs an "
                "authenticated Airflow user and returns only products whose DAG they may read.",
)


def readable_dag_ids(user: GetUserDep, session: SessionDep) -> set[str]:
    """The dag_ids the requesting user may read (the auth manager decides)."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)


ReadableDep = Annotated[set, Depends(readable_dag_ids)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@app.get("/products", summary="Every readable product's SLO status",
         response_model=dict[str, Any])
def list_products(readable: ReadableDep, session: SessionDep) -> Response:
    """``{"products": [ProductStatus...], "invalid_specs": [InvalidSpec...], "evaluated_at"}``;
    the runs of each product are left out here (see ``GET /products/{name}``).

    The body (1.6 MB for 1,000 products) is rendered here, byte for byte as FastAPI's
    ``JSONResponse`` renders a dict (FastAPI's second pass over the dict is skipped), with the
    cyclic garbage collector paused from reading the statuses until the ~100,000 containers of
    statuses and body are freed: none of them is ever looked at by a collection, which would
    otherwise walk them and, promoted, the whole API-server heap (0.3-0.9 s for 1,000
    products)."""
    with gc_paused():
        statuses, invalid = collect(session, readable, _now())
        products = []
        for status in statuses:
            item = to_jsonable(dataclasses.replace(status, runs=[]))  # the runs are not shown here
            item.pop("runs")
            products.append(item)
        body = json.dumps({"evaluated_at": _now().isoformat(), "products": products,
                           "invalid_specs": to_jsonable(invalid)},
                          ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":")).encode("utf-8")
        del statuses, invalid, products  # freed while paused: the collector's counts go back down
    return Response(body, media_type="application/json")


@app.get("/products/{name}", summary="One product: SLIs, recent runs and gate history")
def get_product(name: str, readable: ReadableDep, session: SessionDep) -> dict[str, Any]:
    """The product's status with its runs in the SLO window (newest first), each with its
    partition, state, gate outcome, publish time and failure. 404 when unknown or not
    readable by this user (no hint which)."""
    statuses, invalid = collect(session, readable, _now(), only=name)
    if statuses:
        return to_jsonable(statuses[0])
    if invalid:
        return {"invalid_spec": to_jsonable(invalid[0])}
    raise HTTPException(status_code=404, detail=f"no product {name!r} you can read")


@app.get("/products/{name}/backfill/estimate", response_model=backfill.BackfillEstimate,
         summary="How long a paced backfill of the product would take",
         responses={401: {"description": "not authenticated"},
                    404: {"description": "no such product, or its DAG is not readable"}})
def backfill_estimate(name: str, readable: ReadableDep, session: SessionDep,
                      runs: Annotated[int, Query(ge=0, le=backfill.MAX_RUNS,
                                                 description="runs (partitions) to backfill, "
                                                             "e.g. a dry run's count")] = 1
                      ) -> backfill.BackfillEstimate:
    """The product's pacing (spec ``backfill`` block), the median duration of its newest
    successful runs (metadata DB) and the paced estimate for ``runs`` runs starting now.
    404 when unknown, invalid or not readable by this user (no hint which). Creating the
    backfill is Airflow's own API (``POST /api/v2/backfills``), which authorizes it."""
    pacing = backfill.pacing_of(name) if name in readable else None
    if pacing is None:
        raise HTTPException(status_code=404, detail=f"no product {name!r} you can read")
    return backfill.backfill_estimate(session, pacing, runs, _now())


@app.get("/products/{name}/contract", summary="The product's contract: view, ODCS or ODPS",
         responses={401: {"description": "not authenticated"},
                    404: {"description": "no such valid product, or its DAG is not readable"}})
def get_contract(name: str, readable: ReadableDep,
                 fmt: Annotated[str, Query(alias="format", pattern="^(" + "|".join(CONTRACT_FORMATS) + ")$",
                                              description="view: columns, checks, SLOs and "
                                                          "consumers as the product page shows "
                                                          "them; odcs: the ODCS v3.1 data "
                                                          "contract; odps: the ODPS v1 data "
                                                          "product")] = "view"
                 ) -> dict[str, Any]:
    """The contract of the product (as ``dataproducts export`` gives it for odcs/odps).
    Consumers the user may not read are counted in ``hidden_consumers``, never named.
    404 when unknown, invalid or not readable by this user (no hint which)."""
    found = contract_of(name, readable, fmt)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no product {name!r} you can read")
    return found if isinstance(found, dict) else to_jsonable(found)


@app.get("/", response_class=HTMLResponse, summary="The SLO page (all products)")
def overview_page(request: Request, readable: ReadableDep, session: SessionDep) -> str:
    statuses, invalid = collect(session, readable, _now())
    return page.overview(statuses, invalid, URL_PREFIX)


@app.get("/ui/{name}", response_class=HTMLResponse, summary="The page of one product")
def product_page(name: str, readable: ReadableDep, session: SessionDep) -> str:
    statuses, _ = collect(session, readable, _now(), only=name)
    if not statuses:
        raise HTTPException(status_code=404, detail=f"no product {name!r} you can read")
    return page.product(statuses[0], URL_PREFIX, pacing=backfill.pacing_of(name),
                        api_root=backfill.api_root(), contract=contract_of(name, readable))


class DataProductsPlugin(AirflowPlugin):
    """Mounts the app at ``/dataproducts`` and adds the "Data products" navigation entry."""

    name = "dataproducts"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Data products"}]
    external_views = [{"name": "Data products", "href": f"{URL_PREFIX}/",
                       "destination": "nav", "url_route": "dataproducts"}]
