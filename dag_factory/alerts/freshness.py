"""The freshness watchdog's task: alert when a product's data is stale although no run failed.

Task callbacks only fire when a task runs; freshness can breach with nothing failing (the
upstream file never lands and the sensor waits, the DAG is paused, the scheduler is down, an
upstream product stops publishing). The factory therefore adds one DAG per deployment,
``dataproducts_slo_watchdog`` (:mod:`dag_factory.build.watchdog`), whose single task
(:class:`FreshnessWatchdogOperator`):

1. reads every product's SLO status from the plugin's JSON API (``GET /dataproducts/products``,
   :mod:`dag_factory.slo.api_client`): the API server computes it from the metadata DB; the
   task never touches the ORM;
2. for each watched product (``alerts`` and ``slo.freshness`` in its spec) whose freshness SLI
   is not met (``slo.freshness.met`` is false), sends one ``[FRESHNESS]`` alert through the
   product's notifiers (the same email / webhook / Slack destinations as its failures), with
   the newest partition (``GET /dataproducts/products/{name}``), the last failure, owner,
   runbook and links;
3. alerts **once per staleness episode**: the episode is the product's newest publish time
   (``never`` without one), remembered in the Airflow Variable :data:`VARIABLE_KEY` (read and
   written through the Task SDK, which tasks may use); a new publish ends the episode;
4. when an alerted product is fresh again (``met`` true), sends one ``[RESOLVED]`` message with
   the same ``alert_id`` and forgets the episode.

Delivery errors are logged; when every channel of an alert failed, the episode is not
remembered (the next run tries again) and the task fails once all products are handled, so a
broken destination shows in Airflow. An API error fails the task too.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from airflow.sdk import BaseOperator

from dag_factory.alerts.message import (
    FRESHNESS, FRESHNESS_RESOLVED, AlertMessage, ProductProfile, freshness_message, scrub_urls,
)

#: The Airflow Variable holding the watchdog's state: ``{"version": 1, "products": {name:
#: {"episode": <newest publish ISO 8601 or "never">, "alert_id": ..., "alerted_at": ...}}}``.
VARIABLE_KEY = "dataproducts_slo_watchdog"
NEVER = "never"

ALERT, RESOLVE, KEEP, FORGET = "alert", "resolve", "keep", "forget"


@dataclass(frozen=True)
class WatchedProduct:
    """A product the watchdog checks, copied from its spec at DAG build time (plain data).

    Attributes:
        profile: the product's :class:`ProductProfile`.
        email: alert recipients (may be empty); webhook_conn_id: or None.
    """

    profile: ProductProfile
    email: tuple[str, ...] = ()
    webhook_conn_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """What the watchdog does for one product this run.

    Attributes:
        name: the product; action: ``alert`` (a new staleness episode), ``resolve`` (fresh
            again after an alert), ``keep`` (nothing to send) or ``forget`` (no longer
            watched: drop its state); episode: the current episode key, or None.
    """

    name: str
    action: str
    episode: str | None = None


def episode_of(status: Mapping[str, Any]) -> str:
    """The staleness episode of a product status: its newest publish time, or ``never``."""
    fresh = ((status.get("slo") or {}).get("freshness") or {})
    return fresh.get("last_published_at") or NEVER


def decide(watched: Iterable[str], statuses: Mapping[str, Mapping[str, Any]],
           remembered: Mapping[str, Mapping[str, Any]]) -> list[Decision]:
    """The actions of one watchdog run (pure: no I/O).

    Args:
        watched: the names of the watched products.
        statuses: name -> its item of ``GET /dataproducts/products`` (a product missing here
            is not readable by the API user, or not loaded by the API server).
        remembered: the state's ``products`` (name -> ``{"episode", ...}``).

    Returns:
        one :class:`Decision` per watched product (in name order), then ``forget`` for
        remembered products no longer watched. A product whose freshness is stale gets
        ``alert`` unless its current episode was alerted already; an alerted product whose
        freshness is met gets ``resolve``; a missing product or one without a freshness
        measurement (``met`` null) keeps its state.
    """
    watched = sorted(set(watched))
    decisions = []
    for name in watched:
        status = statuses.get(name)
        if status is None:
            decisions.append(Decision(name, KEEP))
            continue
        met = ((status.get("slo") or {}).get("freshness") or {}).get("met")
        episode = episode_of(status)
        before = remembered.get(name)
        if met is False:
            alerted = before is not None and before.get("episode") == episode
            decisions.append(Decision(name, KEEP if alerted else ALERT, episode))
        elif met is True and before is not None:
            decisions.append(Decision(name, RESOLVE, before.get("episode")))
        else:
            decisions.append(Decision(name, KEEP, episode))
    decisions += [Decision(name, FORGET) for name in sorted(set(remembered) - set(watched))]
    return decisions


def _load_state() -> dict[str, Any]:
    from airflow.sdk import Variable

    state = Variable.get(VARIABLE_KEY, default=None)
    if state is None:
        return {}
    try:
        products = json.loads(state).get("products")
    except (ValueError, AttributeError):
        return {}
    return dict(products) if isinstance(products, dict) else {}


def _save_state(products: Mapping[str, Any]) -> None:
    from airflow.sdk import Variable

    Variable.set(VARIABLE_KEY, json.dumps({"version": 1, "products": dict(products)},
                                          sort_keys=True),
                 description="Freshness alerts already sent by dataproducts_slo_watchdog, one "
                             "per staleness episode (docs/alerts.md)")


class FreshnessWatchdogOperator(BaseOperator):
    """Check the watched products' freshness through the plugin's API and alert once per
    staleness episode (see the module docstring).

    Args:
        products: the watched products (:class:`WatchedProduct`).
        smtp_conn_id, from_email: the email settings of the alert notifiers.
        send_resolved: send a ``[RESOLVED]`` message when an alerted product is fresh again.

    Returns (XCom):
        ``{"checked", "stale": [names], "alerted": [...], "resolved": [...],
        "unwatched": [names the API did not return], "failed_deliveries": [...]}``.

    Raises:
        airflow.sdk.exceptions.AirflowException: the API is not configured or did not answer,
            or every channel of some alert failed.
    """

    template_fields = ()
    ui_color = "#d6eaf8"

    def __init__(self, *, products: Iterable[WatchedProduct], smtp_conn_id: str = "smtp_default",
                 from_email: str | None = None, send_resolved: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.products = {p.profile.name: p for p in products}
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.send_resolved = send_resolved

    def execute(self, context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from dag_factory.slo.api_client import ApiError, DataProductsApi

        try:
            client = DataProductsApi.from_config()
            listing = client.list_products()
        except ApiError as exc:
            raise AirflowException(f"dataproducts API: {exc.reason}") from None
        statuses = {p.get("name"): p for p in listing.get("products") or []
                    if isinstance(p, Mapping)}
        remembered = _load_state()
        state = dict(remembered)
        summary: dict[str, Any] = {"checked": len(self.products), "stale": [], "alerted": [],
                                   "resolved": [], "unwatched": [], "failed_deliveries": []}
        for decision in decide(self.products, statuses, remembered):
            name = decision.name
            if decision.action == FORGET:
                state.pop(name, None)
                continue
            status = statuses.get(name)
            if status is None:
                summary["unwatched"].append(name)
                self.log.warning("freshness of %s not checked: the API did not return it (is "
                                 "its DAG parsed, and may the API user read it?)", name)
                continue
            if ((status.get("slo") or {}).get("freshness") or {}).get("met") is False:
                summary["stale"].append(name)
            if decision.action == ALERT:
                message = self._message(client, status, name, decision.episode, context, False)
                delivered = self._deliver(name, message, context, summary)
                if delivered:
                    state[name] = {"episode": decision.episode, "alert_id": message.alert_id,
                                   "alerted_at": dt.datetime.now(dt.timezone.utc).isoformat()}
                    summary["alerted"].append(name)
            elif decision.action == RESOLVE:
                if self.send_resolved:
                    message = self._message(client, status, name, decision.episode, context,
                                            True)
                    if self._deliver(name, message, context, summary) is None:
                        continue  # every channel raised: keep the episode, try again next run
                state.pop(name, None)
                summary["resolved"].append(name)
        if state != remembered:
            _save_state(state)
        self.log.info("freshness watchdog: %s", json.dumps(summary, sort_keys=True))
        if summary["failed_deliveries"]:
            raise AirflowException("freshness alerts could not be delivered for "
                                   + ", ".join(summary["failed_deliveries"]) + " (see above)")
        return summary

    def _message(self, client, status, name: str, episode: str, context,
                 resolved: bool) -> AlertMessage:
        from dag_factory.slo.api_client import ApiError

        detail = None
        try:
            detail = client.get_product(name)
        except ApiError as exc:  # the newest partition is a detail: alert without it
            self.log.warning("runs of %s not read: %s", name, exc.reason)
        ti = context.get("ti")
        return freshness_message(
            self.products[name].profile, status, resolved=resolved, episode=episode,
            run_id=context.get("run_id") or getattr(ti, "run_id", None) or "?",
            task_id=getattr(ti, "task_id", None) or self.task_id, detail=detail,
            api_base_url=client.base_url)

    def _deliver(self, name: str, message: AlertMessage, context,
                 summary: dict[str, Any]) -> bool | None:
        """Send ``message`` on every channel of the product.

        Returns:
            True when a channel sent it, False when all skipped it (connection not defined,
            logged), None when every channel that tried raised (recorded in
            ``summary["failed_deliveries"]``).
        """
        from dag_factory.alerts import alert_notifiers

        product = self.products[name]
        notifiers = alert_notifiers(product.profile, email=list(product.email),
                                    webhook_conn_id=product.webhook_conn_id, kind=message.kind,
                                    smtp_conn_id=self.smtp_conn_id, from_email=self.from_email)
        sent = errors = 0
        for notifier in notifiers:
            try:
                if notifier.send(message, context):
                    sent += 1
                    self.log.info("alert %s sent by %s: %s", message.alert_id, notifier.channel,
                                  message.subject)
            except Exception as exc:  # noqa: BLE001 - one broken channel must not stop the rest
                errors += 1
                self.log.error("alert %s not sent by %s: %s: %s", message.alert_id,
                               notifier.channel, type(exc).__name__, scrub_urls(str(exc))[:500])
        if sent:
            return True
        if errors:
            summary["failed_deliveries"].append(name)
            return None
        return False


def watched_products(specs: Iterable[Any]) -> list[WatchedProduct]:
    """The products of ``specs`` (validated :class:`~dag_factory.spec.models.ProductSpec`) that
    the watchdog checks: those with an ``alerts`` destination and a ``slo.freshness`` target."""
    return [WatchedProduct(profile=ProductProfile.from_spec(spec), email=tuple(spec.alerts.email),
                           webhook_conn_id=spec.alerts.webhook_conn_id)
            for spec in specs
            if (spec.alerts.email or spec.alerts.webhook_conn_id) and spec.slo.freshness]


__all__ = ["ALERT", "Decision", "FORGET", "FRESHNESS", "FRESHNESS_RESOLVED",
           "FreshnessWatchdogOperator", "KEEP", "NEVER", "RESOLVE", "VARIABLE_KEY",
           "WatchedProduct", "decide", "episode_of", "watched_products"]
