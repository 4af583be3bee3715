"""The publish operator: audited staging output -> published partitions + asset event."""

from __future__ import annotations

import json
from typing import Any

from dag_factory import datastore
from dag_factory.datastore import Location
from dag_factory.operator_base import DeterministicFailure, ProductOperator
from dag_factory.publish.partitions import PublishRequest, publish_partitions
from dag_factory.storage import partition_dir_name, product_root, run_paths


class NotAudited(DeterministicFailure, RuntimeError):
    """Publish found no passing gate result: it never publishes unaudited data."""


class PublishOperator(ProductOperator):
    """Replace the partitions of the run's data interval with the audited output.

    See :func:`dag_factory.publish.partitions.publish_partitions` for the guarantees. Emits
    an asset event on the product's asset with ``extra`` = product, version, rows, partitions,
    data interval, quality outcome and check counts, run id. Deletes the run's staging on
    success (on failure it is kept for diagnosis).

    Args:
        version: the product's semver; major: its major (the storage path's ``v<major>``).
        partition_by: the partition column.
        columns: ``output.columns`` (name, data_type, description) for the schema facet.
        documentation: the product's description, for the documentation facets.
        contract: the output contract written into each partition manifest (see
            :func:`dag_factory.contract.compat.contract_record`), or None.

    Returns (XCom): ``{"rows", "partitions", "removed", "paths", "quality"}``.

    Raises:
        NotAudited: the gate result is missing or failed.
    """

    ui_color = "#e8daef"

    def __init__(self, *, version: str, major: int, partition_by: str,
                 columns: list[dict[str, Any]], documentation: str,
                 contract: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(stage="publish", **kwargs)
        self.version = version
        self.major = major
        self.partition_by = partition_by
        self.columns = columns
        self.documentation = documentation
        self.contract = contract

    def run(self, context) -> dict[str, Any]:
        if self.warehouse is not None:
            return self._publish_to_warehouse(context)
        interval = self.data_interval(context)
        paths = run_paths(self.product, context["run_id"])
        root = product_root(self.product, self.major)
        request = PublishRequest(
            product=self.product, version=self.version, root=root, partition_by=self.partition_by,
            paths=paths, quality=self._audited(paths.quality_file), interval=interval,
            run_id=context["run_id"], contract=self.contract)
        result = publish_partitions(request)
        self.measured = {"rows": result.rows, "files": len(result.manifests),
                         "bytes": sum(m["bytes"] for m in result.manifests),
                         "schema": result.manifests[0]["schema"] if result.manifests else None}
        self._emit_asset_event(context, request.quality, interval, result.rows, result.partitions)
        datastore.delete_tree(paths.root)
        self.log.info("published %d rows in %d partition(s) under %s; removed %s",
                      result.rows, len(result.partitions), root, result.removed or "none")
        self.progress.info("publish: %d rows in %d partition(s) -> %s", result.rows,
                           len(result.partitions), root)
        return {"rows": result.rows, "partitions": result.partitions, "removed": result.removed,
                "paths": [str(root / partition_dir_name(self.partition_by, p))
                          for p in result.partitions],
                "quality": request.quality["outcome"]}

    def _publish_to_warehouse(self, context) -> dict[str, Any]:
        """Publish on a warehouse engine: the transactional swap of
        :meth:`WarehouseEngine.publish`, then the same asset event and XCom as on DuckDB
        (``paths`` is empty; ``table`` names the product table)."""
        job = self.stage_job(context)
        paths = run_paths(self.product, context["run_id"])
        quality = self._audited(paths.quality_file)
        result = self.warehouse.publish(job, self.partition_by, quality["rows"],
                                        version=self.version, contract=self.contract)
        self.measured = {"rows": result.rows, "files": 1, "bytes": result.bytes,
                         "schema": result.schema}
        self._emit_asset_event(context, quality, job.interval, result.rows, result.partitions)
        datastore.delete_tree(paths.root)
        self.log.info("published %d rows in %d partition(s) into %s; removed %s", result.rows,
                      len(result.partitions), result.table, result.removed or "none")
        self.progress.info("publish: %d rows in %d partition(s) -> %s", result.rows,
                           len(result.partitions), result.table)
        return {"rows": result.rows, "partitions": result.partitions, "removed": result.removed,
                "paths": [], "table": result.table, "quality": quality["outcome"]}

    def lineage(self, measured):
        from dag_factory.lineage import stages

        return stages.publish(self.product, self.major, self.owner, self.documentation,
                              self.columns, measured, engine=self.engine)

    def _audited(self, quality_file: Location) -> dict:
        try:
            quality = json.loads(datastore.read_text(quality_file))
        except datastore.NotFound:
            raise NotAudited(f"product {self.product!r}: no quality gate result at "
                             f"{quality_file}; publish runs only after the gate") from None
        if quality["outcome"] == "fail":
            raise NotAudited(f"product {self.product!r}: the quality gate failed; not publishing")
        return quality

    def _emit_asset_event(self, context, quality: dict, interval, rows: int,
                          partitions: list[str]) -> None:
        counts = quality["counts"]
        extra = {
            "product": self.product,
            "version": self.version,
            "rows": rows,
            "partitions": partitions,
            "data_interval_start": interval.start.isoformat(),
            "data_interval_end": interval.end.isoformat(),
            "quality": quality["outcome"],
            "checks_passed": counts["passed"],
            "checks_warned": counts["warned"],
            "checks_failed": counts["failed"],
            "run_id": context["run_id"],
        }
        for asset in self.outlets:
            context["outlet_events"][asset].extra = extra
