"""Extra output ports: the partitions a run published, copied to S3 or a file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dag_factory.config import data_folder
from dag_factory.datastore import parse_location, store_for, under
from dag_factory.datastore.workspace import Workspace
from dag_factory.engines import duckdb as engine
from dag_factory.operator_base import ProductOperator
from dag_factory.publish.reader import local_data_file, read_partition

_COPY_FORMATS = {"parquet": "format parquet, compression zstd", "csv": "format csv, header true",
                 "jsonl": "format json"}


class ExportOperator(ProductOperator):
    """Write the rows this run published to one export port.

    Args:
        export: the export spec as a dict (``type`` s3|file, ``uri``/``path``, ``format``,
            ``conn_id``); ``uri``/``path`` are Jinja-rendered.
        publish_task_id: the publish task, whose XCom lists the published partition paths.

    Returns (XCom): ``{"rows": int, "location": str}``.
    """

    template_fields = ("export",)
    ui_color = "#fadbd8"

    def __init__(self, *, export: dict[str, Any], publish_task_id: str, major: int,
                 **kwargs: Any) -> None:
        super().__init__(stage="export", **kwargs)
        self.export = export
        self.major = major
        self.publish_task_id = publish_task_id

    def run(self, context) -> dict[str, Any]:
        published = context["ti"].xcom_pull(task_ids=self.publish_task_id) or {}
        partitions = [read_partition(parse_location(p)) for p in published.get("paths", [])]
        with tempfile.TemporaryDirectory(prefix="dataproducts-export-") as tmp, \
                Workspace() as workspace:  # follows the manifests; downloads from S3
            files = [str(local_data_file(p, workspace)) for p in partitions if p is not None]
            local = Path(tmp) / f"export.{self.export['format']}"
            rows = self._write(files, local)
            self.measured = {"rows": rows, "bytes": local.stat().st_size}
            location = self._deliver(local)
        self.log.info("export: %d rows to %s", rows, location)
        self.progress.info("export: %d rows -> %s", rows, location)
        return {"rows": rows, "location": location}

    def lineage(self, measured):
        from dag_factory.lineage import stages

        return stages.export(self.product, self.major, self.export, measured)

    def _write(self, files: list[str], local: Path) -> int:
        con = engine.connect()
        try:
            if files:
                con.execute("create temp table _export as select * from read_parquet(?)", [files])
            else:
                con.execute("create temp table _export as select 1 as empty where false")
            rows = con.execute("select count(*) from _export").fetchone()[0]
            target = str(local).replace("'", "''")
            con.execute(f"copy _export to '{target}' ({_COPY_FORMATS[self.export['format']]})")
            return rows
        finally:
            con.close()

    def _deliver(self, local: Path) -> str:
        if self.export["type"] == "s3":
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            hook = S3Hook(aws_conn_id=self.export.get("conn_id") or "aws_default")
            bucket, key = S3Hook.parse_s3_url(self.export["uri"])
            hook.load_file(str(local), key, bucket_name=bucket, replace=True)
            return self.export["uri"]
        target = under(data_folder(), self.export["path"], "export path")
        store_for(target).upload(local, target)  # atomic: rename locally, one upload on S3
        return str(target)
