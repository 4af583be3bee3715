"""Stable identifiers of the contracts and products the factory exports (ODCS, ODPS).

A contract stands for one major version of a product's output: the same storage path
(``products/<name>/v<major>``) and the same Airflow Asset (``dataproduct://<name>/v<major>``).
Minor and patch releases keep the id (they may only add, never break); a breaking change
bumps the major and so gets a new id, next to the old one while consumers move over.

Scheme: ``<product name>-v<major>``, e.g. ``flights_daily-v1``. Product names match
``^[a-z][a-z0-9_]{0,62}$`` (no ``-``), so the id splits back unambiguously at its last
``-v``, and it matches ODCS's StableId pattern ``^[A-Za-z0-9_-]+$``, usable as a file name
and in URLs as is.
"""

from __future__ import annotations

import re

from dag_factory.spec.models import PRODUCT_NAME

_CONTRACT_ID = re.compile(PRODUCT_NAME[:-1] + r"-v(0|[1-9]\d*)$")


def contract_id(product: str, major: int) -> str:
    """The ODCS contract id of ``product``'s major version ``major``: ``"<product>-v<major>"``.

    Raises:
        ValueError: ``product`` is not a product name or ``major`` is negative.
    """
    if not re.match(PRODUCT_NAME, product) or major < 0:
        raise ValueError(f"expected a product name and a major version >= 0, got "
                         f"{product!r} and {major!r}")
    return f"{product}-v{major}"


def parse_contract_id(value: str) -> tuple[str, int]:
    """Inverse of :func:`contract_id`: ``"flights_daily-v1"`` -> ``("flights_daily", 1)``.

    Raises:
        ValueError: ``value`` is not of the form ``<product name>-v<major>``.
    """
    if not _CONTRACT_ID.match(value):
        raise ValueError(f"expected a contract id <product>-v<major> such as flights_daily-v1, "
                         f"got {value!r}")
    name, _, major = value.rpartition("-v")
    return name, int(major)


def input_contract_id(product: str, major: int, input_name: str) -> str:
    """The id an ODPS input port of a source input (file, s3, http, sql) names as its
    contract: ``"<product>-v<major>-input-<input>"``. ODPS requires a ``contractId`` on every
    input port; the factory declares no schema for sources, so this id stands for the
    product's expectations of that input and no ODCS document is published under it."""
    return f"{contract_id(product, major)}-input-{input_name}"
