"""Graph API versions and their release dates, to warn about an old ``WPP_API_VERSION``.

Source: Meta's Graph API changelog (developers.facebook.com/docs/graph-api/changelog,
updated 2026-10-29), as tabulated in the project's LIMITS.md §8.3. Meta keeps a version
for at least two years, then silently serves calls to it with the oldest live version,
whose payloads can differ: the channel warns at start-up when the configured version is
older than 18 months, so there is time to test the next one.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

RELEASED: Final[dict[str, dt.date]] = {
    "v18.0": dt.date(2023, 9, 12),
    "v19.0": dt.date(2024, 1, 23),
    "v20.0": dt.date(2024, 5, 21),
    "v21.0": dt.date(2024, 10, 2),
    "v22.0": dt.date(2025, 1, 21),
    "v23.0": dt.date(2025, 5, 29),
    "v24.0": dt.date(2025, 10, 8),
    "v25.0": dt.date(2026, 2, 18),
    "v26.0": dt.date(2026, 7, 29),
}
CURRENT: Final = "v26.0"
WARN_AFTER_DAYS: Final = 548  # 18 months

_VERSION = re.compile(r"^v(\d+)\.(\d+)$")


def version_warning(version: str, today: dt.date | None = None) -> str | None:
    """A warning for the log when ``version`` is older than 18 months (or older than
    every version in the table); None when it is recent or newer than the table."""
    today = today or dt.date.today()
    match = _VERSION.match(version)
    if match is None:
        return f"WPP_API_VERSION={version!r} is not a Graph API version like {CURRENT!r}"
    released = RELEASED.get(version)
    if released is None:
        if int(match.group(1)) > max(int(v[1:].split(".")[0]) for v in RELEASED):
            return None  # newer than this table
        released = min(RELEASED.values())  # older than the table: older than its oldest
    age = (today - released).days
    if age <= WARN_AFTER_DAYS:
        return None
    return (
        f"WPP_API_VERSION={version} was released on {released.isoformat()} ({age // 30} "
        f"months ago); Meta retires versions after about two years and then answers with "
        f"the next one, whose payloads can differ. Test and move to {CURRENT} or newer."
    )
