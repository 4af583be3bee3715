"""The ``pacing`` task: the head of every product DAG, where backfill runs wait their turn.

Scheduled, manual and asset-triggered runs pass straight through. A backfill run passes when
the spec's ``allowed_hours`` window is open and ``max_runs_per_hour`` allows one more run;
otherwise the task defers to the triggerer until then (a deferred task holds no worker slot
and, in our pools, no pool slot) and logs why and until when. The run's other tasks wait
behind it, so a held run occupies nothing but its place in ``max_active_runs``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import BaseOperator

from dag_factory.backfill import rate
from dag_factory.backfill.config import PacingConfig, is_backfill
from dag_factory.backfill.window import AllowedHours



def decide(config: PacingConfig, now: dt.datetime, ledger: list[dt.datetime]
           ) -> tuple[dt.datetime | None, str, rate.Admission | None]:
    """Whether a backfill run may start at ``now``.

    Args:
        config: the product's pacing; now: aware UTC; ledger: admissions of the last hour.

    Returns:
        ``(wait_until, reason, admission)``: ``wait_until`` None means start now (and
        ``admission`` is the ledger update to store, when there is a rate limit); otherwise
        the aware UTC time to try again and a sentence saying why.
    """
    window = AllowedHours.parse(config.allowed_hours) if config.allowed_hours else None
    if window is not None and not window.is_open(now):
        opens = window.next_open(now)
        return opens, (f"outside allowed_hours {window} UTC; the window opens at "
                       f"{opens.isoformat(timespec='seconds')}"), None
    if config.max_runs_per_hour is None:
        return None, "admitted (no rate limit)", None
    admission = rate.admit(ledger, now, config.max_runs_per_hour)
    if admission.admitted:
        return None, (f"admitted: {admission.in_last_hour + 1} of max_runs_per_hour "
                      f"{config.max_runs_per_hour} in the last hour"), admission
    retry = admission.retry_at
    if window is not None:
        retry = window.next_open(retry)
    return retry, (f"max_runs_per_hour {config.max_runs_per_hour} reached "
                   f"({admission.in_last_hour} backfill runs started in the last hour); next "
                   f"slot at {retry.isoformat(timespec='seconds')}"), None


class PacingGateOperator(BaseOperator):
    """Hold a backfill run until the product's pacing allows it to start.

    Args:
        pacing: :meth:`PacingConfig.as_dict` of the product (a template field, so it is in
            the serialized DAG, where the cluster policy reads it).
        **kwargs: passed to :class:`airflow.sdk.BaseOperator`.

    Defers with the standard provider's ``DateTimeTrigger`` while waiting; never fails for
    pacing reasons.
    """

    template_fields = ("pacing",)
    ui_color = "#f4f1e8"

    def __init__(self, *, pacing: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacing = pacing

    def execute(self, context) -> str:
        """Pass non-backfill runs; admit or defer a backfill run. Returns the decision text."""
        run = context["dag_run"]
        if not is_backfill(getattr(run, "run_type", None), getattr(run, "run_id", None)):
            self.log.info("run %s is not a backfill run: not paced", run.run_id)
            return "not paced"
        return self._admit_or_defer()

    def execute_complete(self, context, event: Any = None) -> str:
        """Back from the trigger: decide again (the window or the rate may have changed)."""
        return self._admit_or_defer()

    def _admit_or_defer(self) -> str:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        from airflow.sdk import Variable

        config = PacingConfig.from_mapping(self.pacing)
        now = dt.datetime.now(dt.timezone.utc)
        key = rate.ledger_key(config.product)
        ledger = rate.loads(Variable.get(key, default=None)) if config.max_runs_per_hour else []
        wait_until, reason, admission = decide(config, now, ledger)
        if wait_until is None:
            if admission is not None:
                Variable.set(key, rate.dumps(admission.ledger),
                             description=f"backfill admissions of {config.product} in the last "
                                         "hour (dataproducts pacing; safe to delete)")
            self.log.info("backfill run %s", reason)
            return reason
        self.log.info("backfill run waits: %s (deferred to the triggerer; no worker slot held)",
                      reason)
        self.defer(trigger=DateTimeTrigger(moment=wait_until), method_name="execute_complete")
        return reason  # not reached: defer() raises
