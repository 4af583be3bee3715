"""A placeholder DAG for an invalid product file: visible in the UI, errors in its docs,
its one task fails with them, and the product's run history stays in place."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from airflow.sdk import DAG, BaseOperator

from dag_factory.spec.errors import SpecError

INVALID_TAG = "invalid-spec"


class SpecErrorOperator(BaseOperator):
    """Fails with the spec errors of the product file (no retries)."""

    ui_color = "#f5b7b1"

    def __init__(self, *, errors: str, **kwargs) -> None:
        super().__init__(retries=0, **kwargs)
        self.errors = errors

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("the product file is invalid; fix it and the DAG comes back:\n"
                                   + self.errors)


def placeholder_dag_id(path: Path, claimed_name: str | None, taken: set[str]) -> str:
    """The product's own name when the file states a valid, unclaimed one; else
    ``invalid__<file stem>``."""
    if claimed_name and claimed_name not in taken:
        return claimed_name
    return "invalid__" + re.sub(r"[^A-Za-z0-9_]", "_", path.stem)[:200]


def build_invalid_dag(dag_id: str, path: Path, error: SpecError) -> DAG:
    """The placeholder DAG of an invalid product file."""
    errors = "\n".join(str(i) for i in error.issues)
    doc = (f"# Invalid product file `{path.name}`\n\nThis product is not running: its spec has "
           f"{len(error.issues)} error(s). Fix the file; the DAG is rebuilt on the next parse.\n\n"
           f"```\n{errors}\n```\n\nCheck locally with `dataproducts validate {path.name}`.")
    count = len(error.issues)
    display = f"{dag_id} - INVALID SPEC ({count} error{'s' if count != 1 else ''}, see Dag docs)"
    with DAG(dag_id=dag_id, dag_display_name=display, schedule=None, start_date=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
             catchup=False, doc_md=doc, description=f"INVALID SPEC: {path.name}",
             tags=["dataproduct", INVALID_TAG]) as dag:
        SpecErrorOperator(task_id="spec_error", errors=errors, doc_md=doc)
    return dag
