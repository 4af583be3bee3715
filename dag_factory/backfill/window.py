"""``allowed_hours``: the UTC window of the day in which backfill runs may start."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_DAY = 24 * 60


@dataclass(frozen=True)
class AllowedHours:
    """A daily UTC window ``[start, end)`` in minutes after midnight.

    ``"22:00-04:00"`` wraps past midnight; ``"00:00-00:00"`` (start = end) is the whole day.

    Attributes:
        start, end: minutes after 00:00 UTC (0..1439).
    """

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> "AllowedHours":
        """Parse ``"HH:MM-HH:MM"``.

        Raises:
            ValueError: text not of that form (the spec validates it first, so this is a bug
                or a hand-edited serialized DAG).
        """
        match = _WINDOW.match(text or "")
        if not match:
            raise ValueError(f'allowed_hours {text!r}: expected a UTC window "HH:MM-HH:MM", '
                             'e.g. "00:00-06:00"')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return cls(start=h1 * 60 + m1, end=h2 * 60 + m2)

    def _minute_of_day(self, moment: dt.datetime) -> float:
        moment = moment.astimezone(dt.timezone.utc)
        return moment.hour * 60 + moment.minute + (moment.second + moment.microsecond / 1e6) / 60

    def is_open(self, moment: dt.datetime) -> bool:
        """Whether ``moment`` (aware) lies in the window."""
        if self.start == self.end:
            return True
        minute = self._minute_of_day(moment)
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def next_open(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` itself when the window is open, else the next time it opens (aware UTC)."""
        if self.is_open(moment):
            return moment
        moment = moment.astimezone(dt.timezone.utc)
        midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        opening = midnight + dt.timedelta(minutes=self.start)
        return opening if opening > moment else opening + dt.timedelta(days=1)

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
