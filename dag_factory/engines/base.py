"""The interface of a warehouse engine: where a product's transform, quality gate and
published table live when they are not the embedded DuckDB + Parquet default.

A warehouse engine runs write-audit-publish inside the warehouse:

1. :meth:`WarehouseEngine.transform` loads the run's staged inputs (Parquet files the ingest
   stage wrote, :func:`dag_factory.storage.run_paths`), runs the product SQL there and writes
   the result, conformed to ``output.columns``, into a per-run **staging table**;
2. :meth:`WarehouseEngine.audit` runs the product's Soda contract on the staging table;
3. :meth:`WarehouseEngine.publish` replaces the rows of the run's partitions in the **product
   table** ``<schema>.<product>_v<major>`` with the staged rows, atomically for readers.

The operators keep everything engine-independent (data interval, contract checks of the
result, gate records for the SLO engine, asset events, XCom shapes), so an engine only moves
data. docs/engines.md says what a Redshift or Athena engine would implement.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from dag_factory.interval import DataInterval


def staging_prefix(product: str, major: int) -> str:
    """``_stg_<product>_v<major>`` (product cut to 40 characters): the run-independent part
    of a product's staging table names, also their OpenLineage name."""
    return f"_stg_{product[:40]}_v{major}"


@dataclass(frozen=True)
class StageJob:
    """One stage of one product run.

    Attributes:
        product: the product name; major: its semver major (``<product>_v<major>``);
        run_id: the Airflow run id; interval: the run's data interval.
    """

    product: str
    major: int
    run_id: str
    interval: DataInterval

    @property
    def table(self) -> str:
        """The product table's name, ``<product>_v<major>`` (see spec.models.product_table)."""
        return f"{self.product}_v{self.major}"

    @property
    def staging_prefix(self) -> str:
        """The run-independent part of the staging table names (also their lineage name)."""
        return staging_prefix(self.product, self.major)

    @property
    def staging_table(self) -> str:
        """This run's staging table: the prefix + a digest of the run id (at most 63 bytes, the
        PostgreSQL identifier limit, and only [a-z0-9_], so no engine needs to escape it)."""
        digest = hashlib.sha1(self.run_id.encode("utf-8")).hexdigest()[:10]
        return f"{self.staging_prefix}_{digest}"


@dataclass
class StagedOutput:
    """What :meth:`WarehouseEngine.transform` staged.

    Attributes:
        rows: rows in the staging table; partitions: distinct partition values as text, sorted,
        NULL as :data:`dag_factory.storage.NULL_PARTITION`; bytes: the staging table's size.
    """

    rows: int
    partitions: list[str]
    bytes: int


@dataclass
class TablePublish:
    """What :meth:`WarehouseEngine.publish` did.

    Attributes:
        rows: rows inserted; partitions: the partition values written (sorted, as text);
        removed: partition values of the interval that the new output no longer has (deleted);
        table: the product table as ``database.schema.table`` (display only);
        schema: the product table's columns, ``[{"name": str, "type": str}]``; bytes: its size.
    """

    rows: int
    partitions: list[str]
    removed: list[str]
    table: str
    schema: list[dict[str, str]] = field(default_factory=list)
    bytes: int = 0


class WarehouseEngine(ABC):
    """Base of the warehouse engines (see the module docstring).

    Args:
        config: the spec's ``engine`` block as a dict (``type`` and the engine's own keys,
            e.g. ``conn_id`` and ``schema`` for postgres).
    """

    type: ClassVar[str]

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    @abstractmethod
    def transform(self, job: StageJob, sql: str, inputs: Mapping[str, Path],
                  columns: list[dict[str, Any]], partition_by: str) -> StagedOutput:
        """Run ``sql`` over the inputs (relation name -> staged Parquet file) into the run's
        staging table, with exactly the declared ``columns`` (name, data_type) in order.

        Raises:
            dag_factory.transform.ContractViolation: missing or undeclared columns.
        """

    @abstractmethod
    def audit(self, job: StageJob, columns: list[dict[str, Any]],
              checks: list[Any] | None) -> tuple[Any, dict[str, Any]]:
        """Verify the Soda contract (``output.columns``/``checks``) on the staging table.

        Returns:
            (:class:`dag_factory.quality.gate.GateResult`, metrics) where metrics is
            ``{"rows": int, "bytes": int, "columns": {name: {"nulls": int, "distinct": int}}}``.
        """

    @abstractmethod
    def publish(self, job: StageJob, partition_by: str, audited_rows: int,
                version: str | None = None, contract: dict | None = None) -> TablePublish:
        """Replace the run's partitions of the product table with the staging table's rows,
        atomically for readers, and drop the staging table. A failure at any point leaves
        the product table as it was.

        Args:
            audited_rows: the row count the gate saw; a staging table holding another count
                is not published.
            version / contract: the product's semver and output contract record
                (:func:`dag_factory.contract.compat.contract_record`); when given, the
                publish record (:meth:`published_record`) is written in the same transaction.
        """

    @abstractmethod
    def published_record(self, product: str) -> dict | None:
        """The publish record of the product's highest published major, in the shape of a
        partition manifest (``product``, ``version``, ``partition.key``, ``schema``,
        ``contract``, ``run_id``, ``published_at``): the baseline of ``dataproducts validate
        --against published``. None when the product never published a record here.
        """

    @abstractmethod
    def product_naming(self, product: str, major: int):
        """OpenLineage naming (``get_namespace()``/``get_name()``) of the product table."""

    @abstractmethod
    def staged_naming(self, product: str, major: int):
        """OpenLineage naming of the product's staging tables (one name for every run)."""
