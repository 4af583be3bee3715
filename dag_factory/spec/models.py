"""Pydantic models of product spec v1 (see docs/spec.md); unknown keys are rejected everywhere.

The ``output.columns`` and ``output.checks`` blocks are Soda Core v4 contract syntax; their
shape is validated against Soda's own JSON Schema in :mod:`dag_factory.spec.soda_schema`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PRODUCT_NAME = r"^[a-z][a-z0-9_]{0,62}$"
RELATION_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
DURATION = r"^\d+(\.\d+)?(s|m|h|d|w)$"
PERCENT = r"^\d{1,3}(\.\d+)?%$"
HOURS_WINDOW = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
CONN_ID = r"^[A-Za-z0-9_.\-]{1,250}$"
SQL_TYPE = r"^[A-Za-z][A-Za-z0-9_ ]{0,40}(\(\s*\d+\s*(,\s*\d+\s*)?\))?$"

PATTERN_MEANING = {
    PRODUCT_NAME: "a product name: lowercase letter first, then up to 62 of a-z, 0-9, _",
    RELATION_NAME: "a relation name: a-z or _ first, then up to 62 of a-z, 0-9, _",
    SEMVER: 'a semantic version such as "1.0.0" (quote it in YAML)',
    DURATION: "a duration such as 26h, 30d, 90s or 15m",
    PERCENT: 'a percentage such as "99%" or "99.5%"',
    HOURS_WINDOW: 'a UTC window "HH:MM-HH:MM", e.g. "00:00-06:00"',
    EMAIL: "an email address",
    SQL_TYPE: "an SQL type name such as date, varchar, bigint, double or decimal(10, 2)",
    CONN_ID: "an Airflow connection id (letters, digits, _ . -)",
    r"^https?://": "an http(s):// URL",
    r"^s3://[^/]+/.+": "an S3 URI s3://bucket/key",
}

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
FORMATS = ("csv", "parquet", "json", "jsonl")
Format = Literal["csv", "parquet", "json", "jsonl"]


def parse_duration(text: str) -> dt.timedelta:
    """Turn a spec duration (``"26h"``, ``"30d"``, ``"90s"``, ``"1.5h"``) into a timedelta.

    Raises:
        ValueError: when ``text`` does not match ``<number><s|m|h|d|w>``.
    """
    if not re.match(DURATION, text):
        raise ValueError(f"expected a duration such as 26h, 30d or 90s, got {text!r}")
    return dt.timedelta(seconds=float(text[:-1]) * _DURATION_UNITS[text[-1]])


def parse_percent(text: str) -> float:
    """Turn ``"99%"`` / ``"99.5%"`` into a fraction (0.99 / 0.995). Raises ValueError over 100%."""
    value = float(text.rstrip("%")) / 100
    if not 0 <= value <= 1:
        raise ValueError(f"expected a percentage between 0% and 100%, got {text!r}")
    return value


class FieldError(ValueError):
    """A model validator's error about one part of the model, e.g. ``("inputs", 1, "name")``.

    The loader appends ``path`` to the model's location, so the error points at that part.
    """

    def __init__(self, message: str, *path: str | int):
        super().__init__(message)
        self.path = path


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(StrictModel):
    """Who answers for the product: team name, contact email and the on-call runbook URL."""

    team: str = Field(min_length=1, description="Owning team; becomes the DAG owner.")
    email: str = Field(pattern=EMAIL, description="Team contact address.")
    runbook: str | None = Field(
        default=None, pattern=r"^https?://", description="Runbook URL linked from alerts and docs."
    )


class WaitSpec(StrictModel):
    """Optional sensor-like wait for an input to arrive, in reschedule mode (no worker held)."""

    timeout: str = Field(default="6h", pattern=DURATION, description="Give up after this long.")
    poke_interval: str = Field(default="5m", pattern=DURATION, description="Check this often.")


class CsvOptions(StrictModel):
    """Reader options for CSV inputs, passed to DuckDB's ``read_csv`` as bound parameters."""

    delim: str | None = Field(default=None, max_length=4)
    header: bool | None = None
    nullstr: str | None = Field(default=None, max_length=32, description='e.g. "NA"')
    dateformat: str | None = Field(default=None, max_length=64)
    timestampformat: str | None = Field(default=None, max_length=64)


class _InputBase(StrictModel):
    name: str = Field(
        pattern=RELATION_NAME, description="Relation name the transform SQL selects from."
    )
    description: str | None = None
    wait: WaitSpec | None = Field(
        default=None, description="Wait for the input to appear instead of failing at once."
    )


class _FormattedInput(_InputBase):
    format: Format | None = Field(
        default=None, description="csv | parquet | json | jsonl; inferred from the extension."
    )
    csv: CsvOptions | None = Field(default=None, description="CSV reader options.")

    def location(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @model_validator(mode="after")
    def _infer_format(self) -> "_FormattedInput":
        if self.format is None:
            inferred = infer_format(self.location())
            if inferred is None:
                raise ValueError(
                    f"cannot infer the format of {self.location()!r}; set format to one of "
                    + ", ".join(FORMATS)
                )
            object.__setattr__(self, "format", inferred)
        if self.csv is not None and self.format != "csv":
            raise FieldError("csv options are only allowed with format: csv", "csv")
        return self


def infer_format(location: str) -> str | None:
    """Guess the file format from a path or URI extension (ignoring Jinja), or None."""
    stem = location.split("?", 1)[0].lower()
    for ext, fmt in ((".csv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl"),
                     (".ndjson", "jsonl"), (".json", "json")):
        if stem.endswith(ext):
            return fmt
    return None


class FileInput(_FormattedInput):
    """A file under the data folder (local path, Jinja-templated with Airflow macros)."""

    type: Literal["file"]
    path: str = Field(min_length=1, description="Relative to [dataproducts] data_folder.")

    def location(self) -> str:
        return self.path

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("expected a path relative to the data folder, without '..'")
        return value


class S3Input(_FormattedInput):
    """An object in S3 read through the amazon provider's S3Hook."""

    type: Literal["s3"]
    uri: str = Field(pattern=r"^s3://[^/]+/.+", description="s3://bucket/key, Jinja-templated.")
    conn_id: str = Field(default="aws_default", pattern=CONN_ID)

    def location(self) -> str:
        return self.uri


class HttpInput(_FormattedInput):
    """A file downloaded over HTTP(S) with a timeout and retries."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://", description="Jinja-templated URL.")
    timeout: float = Field(default=30, gt=0, le=3600, description="Seconds per attempt.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on 5xx and connection errors.")

    def location(self) -> str:
        return self.url


class SqlInput(_InputBase):
    """The result of a query on an Airflow connection (Postgres, or any common-sql hook)."""

    type: Literal["sql"]
    conn_id: str = Field(pattern=CONN_ID)
    query: str = Field(min_length=1, description="Jinja-templated SELECT.")

    @model_validator(mode="after")
    def _no_wait(self) -> "SqlInput":
        if self.wait is not None:
            raise FieldError("wait is not supported for sql inputs (a query has no arrival)",
                             "wait")
        return self


class ProductInput(_InputBase):
    """The published partitions of another product that fall in this run's data interval."""

    type: Literal["product"]
    product: str = Field(pattern=PRODUCT_NAME)
    major: int | None = Field(
        default=None, ge=0, le=100_000,
        description="Pin the upstream's major version: read products/<product>/v<major>/ and "
        "schedule on its asset. Without it the input follows the upstream's current major, "
        "so a major bump upstream switches this input to the new version (docs/compatibility.md).",
    )


Input = Annotated[
    Union[FileInput, S3Input, HttpInput, SqlInput, ProductInput], Field(discriminator="type")
]


class TransformSpec(StrictModel):
    """The transform: DuckDB SQL inline (``sql``) or in a file relative to the products folder."""

    sql: str | None = Field(default=None, min_length=1)
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> "TransformSpec":
        if (self.sql is None) == (self.file is None):
            raise ValueError("expected exactly one of sql or file")
        return self


class Column(BaseModel):
    """An output column in Soda Core v4 contract syntax (name, data_type, checks, ...).

    Extra Soda keys are allowed here and checked against Soda's JSON Schema instead.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    data_type: str | None = Field(default=None, pattern=SQL_TYPE)
    checks: list[Any] | None = None


class S3Export(StrictModel):
    """An extra output port: the run's published rows written to S3."""

    type: Literal["s3"]
    uri: str = Field(pattern=r"^s3://[^/]+/.+")
    format: Literal["csv", "parquet", "jsonl"] = "parquet"
    conn_id: str = Field(default="aws_default", pattern=CONN_ID)


class FileExport(StrictModel):
    """An extra output port: the run's published rows written under the data folder."""

    type: Literal["file"]
    path: str = Field(min_length=1)
    format: Literal["csv", "parquet", "jsonl"] = "parquet"


Export = Annotated[Union[S3Export, FileExport], Field(discriminator="type")]


class DuckDBEngine(StrictModel):
    """The default engine: transform and gate in in-process DuckDB, published output as
    Hive-partitioned Parquet under the data folder (see docs/engines.md)."""

    type: Literal["duckdb"]


POSTGRES_MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1; longer names are silently truncated


class PostgresEngine(StrictModel):
    """Transform, gate and published table in a PostgreSQL database (see docs/engines.md)."""

    type: Literal["postgres"]
    conn_id: str = Field(pattern=CONN_ID,
                         description="Airflow connection (type postgres) of the warehouse.")
    schema_name: str = Field(default="dataproducts", alias="schema", min_length=1,
                             max_length=POSTGRES_MAX_IDENTIFIER_BYTES,
                             description="Schema of the product table <name>_v<major> and of "
                             "the run's staging tables; created when missing.")

    @field_validator("schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return postgres_identifier(value)


ENGINES = ("duckdb", "postgres")
Engine = Annotated[Union[DuckDBEngine, PostgresEngine], Field(discriminator="type")]


def postgres_identifier(value: str) -> str:
    """Check that ``value`` can be a PostgreSQL identifier as it is (it is always quoted).

    Raises:
        ValueError: for a NUL character, a double quote (Soda Core's PostgreSQL dialect quotes
            names without escaping it, so the quality gate could not query such a name) or
            more than 63 UTF-8 bytes.
    """
    if "\x00" in value:
        raise ValueError("expected a PostgreSQL identifier without NUL characters")
    if '"' in value:
        raise ValueError('expected a name without double quotes (") on engine postgres: Soda '
                         "Core's PostgreSQL dialect does not escape them, so the quality gate "
                         "could not query it")
    size = len(value.encode("utf-8"))
    if size > POSTGRES_MAX_IDENTIFIER_BYTES:
        raise ValueError(f"expected a PostgreSQL identifier of at most "
                         f"{POSTGRES_MAX_IDENTIFIER_BYTES} bytes, got {size}")
    return value


class OutputSpec(StrictModel):
    """The output port: partition key, Soda columns/checks, optional extra exports."""

    partition_by: str = Field(description="Column whose values name the published partitions.")
    columns: list[Column] = Field(min_length=1)
    checks: list[Any] | None = None
    exports: list[Export] = Field(default_factory=list)

    @model_validator(mode="after")
    def _partition_is_a_column(self) -> "OutputSpec":
        names = [c.name for c in self.columns]
        _no_duplicates("column", names, "columns")
        if self.partition_by not in names:
            columns = ", ".join(names)
            raise FieldError(
                f"partition_by {self.partition_by!r} is not one of the columns ({columns})",
                "partition_by",
            )
        return self


class SloSpec(StrictModel):
    """Service level objectives; the SLI engine measures them over ``window``."""

    freshness: str | None = Field(default=None, pattern=DURATION)
    success_rate: str | None = Field(default=None, pattern=PERCENT)
    quality_pass_rate: str | None = Field(default=None, pattern=PERCENT)
    window: str = Field(default="30d", pattern=DURATION)

    @field_validator("success_rate", "quality_pass_rate")
    @classmethod
    def _in_range(cls, value: str | None) -> str | None:
        if value is not None:
            parse_percent(value)
        return value


class BackfillSpec(StrictModel):
    """Pacing of backfill runs (applied to backfills only, never to scheduled runs)."""

    max_active_runs: int = Field(default=4, ge=1, le=256)
    pool_slots: int = Field(default=4, ge=1, le=1024)
    allowed_hours: str | None = Field(default=None, pattern=HOURS_WINDOW)
    max_runs_per_hour: int | None = Field(default=None, ge=1, le=100_000)


class AlertsSpec(StrictModel):
    """Where failure alerts go."""

    email: list[Annotated[str, Field(pattern=EMAIL)]] = Field(default_factory=list)
    webhook_conn_id: str | None = Field(default=None, pattern=CONN_ID)


class ProductSpec(StrictModel):
    """A data product, spec v1: one YAML file in the products folder becomes one DAG."""

    name: str = Field(pattern=PRODUCT_NAME, description="The dag_id; unique across the folder.")
    version: str = Field(pattern=SEMVER, description="Semver; the major goes into the storage path.")
    title: str = Field(min_length=1)
    description: str | None = None
    domain: str | None = None
    owner: Owner
    tags: list[str] = Field(default_factory=list)
    schedule: str | list[Annotated[str, Field(pattern=PRODUCT_NAME)]] | None = Field(
        default="@daily",
        description="Cron expression or preset, a list of product names (asset-triggered), "
        "or null (manual and backfill only).",
    )
    start_date: dt.date
    end_date: dt.date | None = None
    catchup: bool = False
    retries: int = Field(default=2, ge=0, le=20)
    retry_delay: str = Field(default="5m", pattern=DURATION)
    max_active_runs: int = Field(default=1, ge=1, le=256, description="For scheduled runs.")
    inputs: list[Input] = Field(min_length=1)
    transform: TransformSpec
    output: OutputSpec
    slo: SloSpec = Field(default_factory=SloSpec)
    backfill: BackfillSpec = Field(default_factory=BackfillSpec)
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    engine: Engine = Field(
        default_factory=lambda: DuckDBEngine(type="duckdb"),
        description="Where transform, quality gate and published output run: duckdb (default) "
        "or {type: postgres, conn_id: ..., schema: ...}. See docs/engines.md.")

    @field_validator("engine", mode="before", json_schema_input_type=Union[Literal["duckdb"], Engine])
    @classmethod
    def _engine_shorthand(cls, value: Any) -> Any:
        """``engine: duckdb`` is short for ``{type: duckdb}``; unknown engines are named."""
        shorthand = isinstance(value, str)
        if shorthand:
            value = {"type": value}
        elif not isinstance(value, dict):
            raise ValueError("expected duckdb, or a mapping such as "
                             "{type: postgres, conn_id: warehouse, schema: dataproducts}")
        kind = value.get("type")
        if isinstance(kind, str) and kind not in ENGINES:
            message = (f"unknown engine {kind!r}; expected one of {', '.join(ENGINES)} "
                       "(docs/engines.md says what Redshift or Athena would need)")
            raise ValueError(message) if shorthand else FieldError(message, "type")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not _is_cron_or_preset(value):
                raise ValueError(
                    f"{value!r} is neither a cron expression nor a preset "
                    "(@once, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly)"
                )
        elif isinstance(value, list) and not value:
            raise ValueError("a list schedule must name at least one product")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> "ProductSpec":
        if self.end_date is not None and self.end_date < self.start_date:
            raise FieldError("end_date is before start_date", "end_date")
        _no_duplicates("input", [i.name for i in self.inputs], "inputs")
        if isinstance(self.engine, PostgresEngine):
            self._check_postgres()
        pins: dict[str, int] = {}
        for index, inp in enumerate(self.inputs):
            if isinstance(inp, ProductInput) and inp.major is not None:
                if pins.setdefault(inp.product, inp.major) != inp.major:
                    raise FieldError(f"inputs reading product {inp.product!r} pin different "
                                     f"majors ({pins[inp.product]} and {inp.major}); pin one",
                                     "inputs", index, "major")
        return self

    def _check_postgres(self) -> None:
        """What a product on engine postgres needs beyond the common rules."""
        from dag_factory.engines.postgres_types import UnsupportedType, postgres_type

        table = product_table(self.name, self.major_version)
        try:
            postgres_identifier(table)
        except ValueError as exc:
            raise FieldError(f"the product table name {table!r} is too long: {exc}", "name")
        for index, column in enumerate(self.output.columns):
            try:
                postgres_identifier(column.name)
            except ValueError as exc:
                raise FieldError(str(exc), "output", "columns", index, "name")
            if column.data_type is not None:
                try:
                    postgres_type(column.data_type)
                except UnsupportedType as exc:
                    raise FieldError(str(exc), "output", "columns", index, "data_type")
        if self.output.exports:
            raise FieldError("exports are not supported with engine postgres yet: the product "
                             "table is the output port (see docs/engines.md)", "output", "exports")

    @property
    def major_version(self) -> int:
        """The semver major, used in the storage path (``v1``)."""
        return int(self.version.split(".", 1)[0])

    def pinned_majors(self) -> dict[str, int]:
        """Upstream product name -> the major its ``type: product`` inputs pin (pinned only)."""
        return {i.product: i.major for i in self.inputs
                if isinstance(i, ProductInput) and i.major is not None}

    def read_major(self, upstream: str, majors: dict[str, int]) -> int:
        """The major of ``upstream`` this product reads and schedules on: its pin, else the
        upstream's current major from ``majors`` (product name -> major), else 1."""
        return self.pinned_majors().get(upstream, majors.get(upstream, 1))

    def upstream_products(self) -> list[str]:
        """Products this one reads (``type: product`` inputs) or is scheduled on, deduplicated."""
        names = [i.product for i in self.inputs if isinstance(i, ProductInput)]
        if isinstance(self.schedule, list):
            names += self.schedule
        return list(dict.fromkeys(names))


def product_table(product: str, major: int) -> str:
    """Name of a product's published table on a warehouse engine: ``<product>_v<major>``."""
    return f"{product}_v{major}"


def _no_duplicates(kind: str, names: list[str], list_field: str) -> None:
    """Raise a FieldError at the first repeated ``name`` of ``list_field``, naming all repeats."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        first_repeat = next(i for i, n in enumerate(names) if n in names[:i])
        raise FieldError(f"duplicate {kind} names: {', '.join(duplicates)}",
                         list_field, first_repeat, "name")


_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly",
            "@annually", "@continuous"}


def _is_cron_or_preset(value: str) -> bool:
    if value in _PRESETS:
        return True
    from croniter import croniter  # ships with Airflow

    return croniter.is_valid(value)
