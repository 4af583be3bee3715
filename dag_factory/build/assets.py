"""The Airflow Asset that stands for a product version's published partitions."""

from __future__ import annotations

from airflow.sdk import Asset

ASSET_GROUP = "dataproduct"


def product_asset(name: str, major: int) -> Asset:
    """Asset ``dataproduct://<name>/v<major>``: publish updates it, consumers schedule on it."""
    return Asset(name=f"{name}.v{major}", uri=f"dataproduct://{name}/v{major}", group=ASSET_GROUP)
