"""Failure alerts an on-call engineer can act on (docs/alerts.md).

A product whose spec has an ``alerts`` block (``email`` and/or ``webhook_conn_id``) gets
:func:`failure_callbacks` as the ``on_failure_callback`` of every task (Airflow calls it only
once no retry is left, so retries never spam) and :func:`warn_callbacks` as the quality gate's
``on_success_callback`` (a ``[WARN]`` message when the gate's outcome is ``warn``). A failure
message carries the SLO state after this failure, computed from the plugin's JSON API
(:mod:`dag_factory.alerts.slo_state`), and the freshness watchdog DAG
(:mod:`dag_factory.alerts.freshness`, :mod:`dag_factory.build.watchdog`) sends ``[FRESHNESS]``
alerts, then ``[RESOLVED]``, for products whose data is stale although no run failed.

Settings, in Airflow's ``[dataproducts]`` section (env ``AIRFLOW__DATAPRODUCTS__*``):

- ``alerts_smtp_conn_id`` (read when the DAG is built): the SMTP connection; default
  ``[email] email_conn_id``, else ``smtp_default``;
- ``alerts_from_email`` (when the DAG is built): the sender; default ``[email] from_email``,
  else the SMTP connection's ``from_email`` extra;
- ``api_conn_id`` (read when a callback or the watchdog runs; also decides at build time
  whether the watchdog DAG exists): an http connection to the Airflow API server whose user may
  read every product DAG; host = base URL (default ``[api] base_url``), login + password
  exchanged for a JWT at ``POST /auth/token``, or the password alone used as a bearer token;
  extras ``timeout`` (s, default 10) and ``retries`` (default 1). Unset: failure messages say
  ``SLO state unavailable: no [dataproducts] api_conn_id configured`` and there is no watchdog.
  See :mod:`dag_factory.slo.api_client`;
- ``watchdog_schedule`` (when the DAG is built): the watchdog's schedule, a cron expression
  or preset, default ``*/15 * * * *``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dag_factory.alerts.message import (
    FAILURE, FRESHNESS, FRESHNESS_RESOLVED, QUALITY_WARN, AlertMessage, ProductProfile,
    failure_message, freshness_message, warn_message,
)
from dag_factory.alerts.notifiers import (
    EmailAlertNotifier, ProductAlertNotifier, SlackAlertNotifier, WebhookAlertNotifier,
    alert_notifiers, slack_available,
)

if TYPE_CHECKING:
    from dag_factory.spec.models import ProductSpec

DEFAULT_SMTP_CONN_ID = "smtp_default"

__all__ = [
    "FAILURE", "FRESHNESS", "FRESHNESS_RESOLVED", "QUALITY_WARN", "AlertMessage",
    "EmailAlertNotifier", "ProductAlertNotifier", "ProductProfile", "SlackAlertNotifier",
    "AlertSettings", "WebhookAlertNotifier", "alert_notifiers", "failure_callbacks", "failure_message",
    "freshness_message", "has_alerts", "slack_available", "smtp_conn_id", "warn_callbacks",
    "warn_message",
]


def _conf_get(section: str, key: str) -> str | None:
    from airflow.sdk import conf

    value = conf.get(section, key, fallback=None)
    return value or None


def smtp_conn_id() -> str:
    """The SMTP connection id: ``[dataproducts] alerts_smtp_conn_id``, else Airflow's
    ``[email] email_conn_id``, else ``smtp_default``."""
    return (_conf_get("dataproducts", "alerts_smtp_conn_id")
            or _conf_get("email", "email_conn_id") or DEFAULT_SMTP_CONN_ID)


def from_email() -> str | None:
    """The sender: ``[dataproducts] alerts_from_email``, else ``[email] from_email``, else None
    (the SMTP connection's ``from_email`` extra is used)."""
    return _conf_get("dataproducts", "alerts_from_email") or _conf_get("email", "from_email")


@dataclass(frozen=True)
class AlertSettings:
    """The build-time alert settings (:func:`smtp_conn_id`, :func:`from_email`), read once:
    each read of an Airflow setting costs ~0.02 ms, a product file's DAG needs four twice."""

    smtp_conn_id: str
    from_email: str | None

    @classmethod
    def read(cls) -> "AlertSettings":
        """The settings as Airflow's configuration gives them now."""
        return cls(smtp_conn_id=smtp_conn_id(), from_email=from_email())


def has_alerts(spec: "ProductSpec") -> bool:
    """Whether the spec's ``alerts`` block names any destination."""
    return bool(spec.alerts.email or spec.alerts.webhook_conn_id)


def _callbacks(spec: "ProductSpec", kind: str,
               settings: AlertSettings | None) -> list[ProductAlertNotifier]:
    if not has_alerts(spec):
        return []
    settings = settings or AlertSettings.read()
    return alert_notifiers(ProductProfile.from_spec(spec), email=list(spec.alerts.email),
                           webhook_conn_id=spec.alerts.webhook_conn_id, kind=kind,
                           smtp_conn_id=settings.smtp_conn_id, from_email=settings.from_email)


def failure_callbacks(spec: "ProductSpec",
                      settings: AlertSettings | None = None) -> list[ProductAlertNotifier]:
    """The ``on_failure_callback`` list of a product's tasks; empty without ``alerts``.
    ``settings``: read from Airflow's configuration when not given."""
    return _callbacks(spec, FAILURE, settings)


def warn_callbacks(spec: "ProductSpec",
                   settings: AlertSettings | None = None) -> list[ProductAlertNotifier]:
    """The quality gate's ``on_success_callback`` list (sends only on a ``warn`` outcome);
    empty without ``alerts``. ``settings``: read from Airflow's configuration when not given."""
    return _callbacks(spec, QUALITY_WARN, settings)
