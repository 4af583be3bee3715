"""The publish operator: audited staging output -> published partitions + asset event."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

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

    Returns (XCom): ``{"rows", "partitions", "removed", "paths", "quality"}``.

    Raises:
        NotAudited: the gate result is missing or failed.
    """

    ui_color = "#e8daef"

    def __init__(self, *, version: str, major: int, partition_by: str,
                 columns: list[dict[str, Any]], documentation: str, **kwargs: Any) -> None:
        super().__init__(stage="publish", **kwargs)
        self.version = version
        self.major = major
        self.partition_by = partition_by
        self.columns = columns
        self.documentation = documentation

    def run(self, context) -> dict[str, Any]:
        interval = self.data_interval(context)
        paths = run_paths(self.product, context["run_id"])
        root = product_root(self.product, self.major)
        request = PublishRequest(
            product=self.product, version=self.version, root=root, partition_by=self.partition_by,
            paths=paths, quality=self._audited(paths.quality_file), interval=interval,
            run_id=context["run_id"])
        result = publish_partitions(request)
        self.measured = {"rows": result.rows, "files": len(result.manifests),
                         "bytes": sum(m["bytes"] for m in result.manifests),
                         "schema": result.manifests[0]["schema"] if result.manifests else None}
        self._emit_asset_event(context, request, result)
        shutil.rmtree(paths.root, ignore_errors=True)
        self.log.info("published %d rows in %d partition(s) under %s; removed %s",
                      result.rows, len(result.partitions), root, result.removed or "none")
        self.progress.info("publish: %d rows in %d partition(s) -> %s", result.rows,
                           len(result.partitions), root)
        return {"rows": result.rows, "partitions": result.partitions, "removed": result.removed,
                "paths": [str(root / partition_dir_name(self.partition_by, p))
                          for p in result.partitions],
                "quality": request.quality["outcome"]}

    def lineage(self, measured):
        from dag_factory.lineage import stages

        return stages.publish(self.product, self.major, self.owner, self.documentation,
                              self.columns, measured)

    def _audited(self, quality_file: Path) -> dict:
        if not quality_file.is_file():
            raise NotAudited(f"product {self.product!r}: no quality gate result at "
                             f"{quality_file}; publish runs only after the gate")
        quality = json.loads(quality_file.read_text())
        if quality["outcome"] == "fail":
            raise NotAudited(f"product {self.product!r}: the quality gate failed; not publishing")
        return quality

    def _emit_asset_event(self, context, request: PublishRequest, result) -> None:
        counts = request.quality["counts"]
        extra = {
            "product": self.product,
            "version": self.version,
            "rows": result.rows,
            "partitions": result.partitions,
            "data_interval_start": request.interval.start.isoformat(),
            "data_interval_end": request.interval.end.isoformat(),
            "quality": request.quality["outcome"],
            "checks_passed": counts["passed"],
            "checks_warned": counts["warned"],
            "checks_failed": counts["failed"],
            "run_id": request.run_id,
        }
        for asset in self.outlets:
            context["outlet_events"][asset].extra = extra
