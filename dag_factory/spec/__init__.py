"""Product spec v1: models, loading with located errors, JSON Schema."""

from dag_factory.spec.errors import SpecError, SpecIssue
from dag_factory.spec.loading import FolderResult, LoadedProduct, load_product_file, load_products
from dag_factory.spec.models import ProductSpec

__all__ = [
    "FolderResult", "LoadedProduct", "ProductSpec", "SpecError", "SpecIssue",
    "load_product_file", "load_products",
]
