"""Airflow notifiers that deliver a product's alert: email (SMTP provider), webhook (HTTP
provider, JSON) and Slack (slack provider, when installed).

Each notifier is a :class:`airflow.sdk.BaseNotifier` usable as ``on_failure_callback`` (kind
``failure``) or as the gate's ``on_success_callback`` (kind ``quality_warn``: sends only when
the gate's result is ``warn``). The freshness watchdog builds its own messages (kinds
``freshness`` and ``freshness_resolved``) and delivers them with :meth:`~ProductAlertNotifier.send`
of the same notifiers, so they reach the same destinations. They hold plain data only (a
:class:`~dag_factory.alerts.message.ProductProfile`, addresses, connection ids), build the
message when called and keep no state between calls, so one instance can serve every task of
a DAG, and they live in an importable module, not in the DAG file.

Delivery problems are logged by Airflow ("Failed to run task callback") and never change the
task's state. A connection that is not defined is a configuration gap, logged as one warning.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from dag_factory.alerts.message import (
    FAILURE, KINDS, QUALITY_WARN, AlertMessage, ProductProfile, failure_message, warn_message,
)

#: Connection types of Slack Incoming Webhook connections (the slack provider's ``slackwebhook``).
SLACK_CONN_TYPES = frozenset({"slackwebhook", "slack_webhook"})


def get_connection_or_none(conn_id: str):
    """The Airflow connection ``conn_id`` (through the Task SDK / secrets backends, never the
    ORM), or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def slack_available() -> bool:
    """Whether ``apache-airflow-providers-slack`` (its ``SlackWebhookNotifier``) is importable."""
    try:
        import airflow.providers.slack.notifications.slack_webhook  # noqa: F401
    except ImportError:
        return False
    return True


class ProductAlertNotifier(BaseNotifier):
    """Base of the alert notifiers: builds the product's :class:`AlertMessage` from the
    callback context and hands it to :meth:`send`.

    Args:
        profile: the product's :class:`ProductProfile`.
        kind: ``failure`` (use as ``on_failure_callback``) or ``quality_warn`` (use as the gate
            task's ``on_success_callback``); ``freshness`` / ``freshness_resolved`` for the
            watchdog, which calls :meth:`send` with its own message (as a callback such a
            notifier sends nothing).

    Raises:
        ValueError: for an unknown ``kind``.
    """

    template_fields = ()  # the message is built from the context, never Jinja-rendered
    channel = "?"

    def __init__(self, *, profile: ProductProfile, kind: str = FAILURE) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r}; expected one of {KINDS}")
        super().__init__()
        self.profile = profile
        self.kind = kind

    def build(self, context) -> AlertMessage | None:
        """The message for ``context``, or None when there is nothing to send (``quality_warn``
        on a gate that did not warn; the watchdog's kinds, which are not callbacks)."""
        if self.kind == QUALITY_WARN:
            return warn_message(context, self.profile)
        if self.kind != FAILURE:
            return None
        return failure_message(context, self.profile)

    def notify(self, context) -> None:
        """Build the message and send it (nothing for a non-warning gate)."""
        message = self.build(context)
        if message is None:
            return
        if self.send(message, context):
            self.log.info("alert %s sent by %s: %s", message.alert_id, self.channel,
                          message.subject)

    def send(self, message: AlertMessage, context) -> bool:  # pragma: no cover - overridden
        """Deliver ``message``; True when sent, False when skipped (logged).

        Raises:
            Exception: whatever the provider raises on a delivery failure.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(product={self.profile.name!r}, kind={self.kind!r})"


class EmailAlertNotifier(ProductAlertNotifier):
    """Email through the SMTP provider's ``SmtpNotifier``: subject ``[FAIL] ...`` or
    ``[WARN] ...``, HTML body with the text (monospaced, links clickable).

    Args:
        to: recipient addresses (the spec's ``alerts.email``).
        smtp_conn_id: the SMTP connection (host, port, login/password; extras ``from_email``,
            ``disable_tls``, ``disable_ssl``, ``timeout``, ``retry_limit``).
        from_email: sender address; None uses the connection's ``from_email`` extra.
        profile, kind: see :class:`ProductAlertNotifier`.
    """

    channel = "email"

    def __init__(self, *, profile: ProductProfile, to: list[str],
                 smtp_conn_id: str = "smtp_default", from_email: str | None = None,
                 kind: str = FAILURE) -> None:
        super().__init__(profile=profile, kind=kind)
        self.to = list(to)
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email

    def send(self, message: AlertMessage, context) -> bool:
        """Send the email; False (with a warning) when the SMTP connection is not defined.

        Raises:
            ValueError: no sender address (neither ``from_email`` nor the connection's extra).
            airflow.sdk.exceptions.AirflowException / smtplib.SMTPException / OSError: the
                SMTP server refused or could not be reached.
        """
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        if get_connection_or_none(self.smtp_conn_id) is None:
            self.log.warning("alert %s not emailed: SMTP connection %r is not defined "
                             "(see docs/alerts.md)", message.alert_id, self.smtp_conn_id)
            return False
        # A fresh SmtpNotifier per message, called through notify(): subject and body are set,
        # so nothing is Jinja-rendered (an error text may contain "{{") and nothing is kept.
        SmtpNotifier(
            to=self.to, from_email=self.from_email, subject=message.subject,
            html_content=message.html(), smtp_conn_id=self.smtp_conn_id,
            custom_headers={"X-Dataproducts-Alert": message.alert_id,
                            "X-Dataproducts-Severity": message.severity,
                            "X-Dataproducts-Kind": message.kind},
        ).notify(context)
        return True


class WebhookAlertNotifier(ProductAlertNotifier):
    """POST the alert as JSON (:meth:`AlertMessage.payload`) to the connection
    ``alerts.webhook_conn_id``.

    An ``http`` connection gets the JSON through the HTTP provider's ``HttpNotifier`` (URL:
    the connection's host, with scheme/port/path; login/password as basic auth; extras as
    headers). A Slack Incoming Webhook connection (type ``slackwebhook``) is delivered through
    :class:`SlackAlertNotifier` instead, when the slack provider is installed; without it the
    alert is skipped with a warning.

    Args:
        conn_id: the connection id; timeout: seconds per request unless the connection has a
            ``timeout`` extra (default 10).
        profile, kind: see :class:`ProductAlertNotifier`.
    """

    channel = "webhook"

    def __init__(self, *, profile: ProductProfile, conn_id: str, timeout: float = 10,
                 kind: str = FAILURE) -> None:
        super().__init__(profile=profile, kind=kind)
        self.conn_id = conn_id
        self.timeout = timeout

    def send(self, message: AlertMessage, context) -> bool:
        """POST the payload (or hand it to Slack); False when skipped (logged).

        Raises:
            airflow.sdk.exceptions.AirflowException: a non-2xx/3xx response.
            requests.RequestException: the receiver could not be reached in time.
        """
        from airflow.providers.http.notifications.http import HttpNotifier

        conn = get_connection_or_none(self.conn_id)
        if conn is None:
            self.log.warning("alert %s not posted: webhook connection %r is not defined "
                             "(see docs/alerts.md)", message.alert_id, self.conn_id)
            return False
        if (conn.conn_type or "").lower() in SLACK_CONN_TYPES:
            return SlackAlertNotifier(profile=self.profile, conn_id=self.conn_id,
                                      kind=self.kind).send(message, context)
        # the connection's own "timeout" extra wins over the default
        extra_options = {} if "timeout" in (conn.extra_dejson or {}) else {"timeout": self.timeout}
        HttpNotifier(
            http_conn_id=self.conn_id, method="POST", json=message.payload(),
            headers={"Content-Type": "application/json"}, extra_options=extra_options,
        ).notify(context)
        return True


class SlackAlertNotifier(ProductAlertNotifier):
    """Slack through the slack provider's ``SlackWebhookNotifier`` (Incoming Webhook
    connection), only when ``apache-airflow-providers-slack`` is installed: without it the
    alert is skipped with a warning (the provider is not a dependency of this project).

    Args:
        conn_id: a Slack Incoming Webhook connection (type ``slackwebhook``).
        profile, kind: see :class:`ProductAlertNotifier`.
    """

    channel = "slack"

    def __init__(self, *, profile: ProductProfile, conn_id: str, kind: str = FAILURE) -> None:
        super().__init__(profile=profile, kind=kind)
        self.conn_id = conn_id

    def send(self, message: AlertMessage, context) -> bool:
        """Post :meth:`AlertMessage.slack_text`; False (with a warning) without the provider.

        Raises:
            Exception: whatever ``SlackWebhookHook`` raises on a delivery failure.
        """
        if not slack_available():
            self.log.warning("alert %s not sent to Slack connection %r: "
                             "apache-airflow-providers-slack is not installed",
                             message.alert_id, self.conn_id)
            return False
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        SlackWebhookNotifier(slack_webhook_conn_id=self.conn_id,
                             text=message.slack_text()).notify(context)
        return True


def alert_notifiers(profile: ProductProfile, *, email: list[str], webhook_conn_id: str | None,
                    kind: str, smtp_conn_id: str = "smtp_default",
                    from_email: str | None = None) -> list[ProductAlertNotifier]:
    """The notifiers of one alert kind for a product's ``alerts`` block.

    Args:
        profile: the product; email: recipients (may be empty); webhook_conn_id: or None;
        kind: ``failure`` | ``quality_warn``; smtp_conn_id, from_email: email settings.

    Returns:
        an :class:`EmailAlertNotifier` if ``email`` is set and a :class:`WebhookAlertNotifier`
        if ``webhook_conn_id`` is set, in that order; an empty list for neither.
    """
    notifiers: list[Any] = []
    if email:
        notifiers.append(EmailAlertNotifier(profile=profile, to=list(email), kind=kind,
                                            smtp_conn_id=smtp_conn_id, from_email=from_email))
    if webhook_conn_id:
        notifiers.append(WebhookAlertNotifier(profile=profile, conn_id=webhook_conn_id,
                                              kind=kind))
    return notifiers
