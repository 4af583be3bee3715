"""SQL engines that run a product's transform and quality gate (DuckDB is the default)."""
