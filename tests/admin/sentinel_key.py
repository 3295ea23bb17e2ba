"""A key function no setting lists: the trust tests assert the admin never imports it.

Importing a module runs its code; had the admin imported this one, it would
be in ``sys.modules``, and ``IMPORTS`` would count it.
"""

from __future__ import annotations

from typing import Any

IMPORTS = [1]


def key(request: Any) -> str:
    return "sentinel"


def is_failure(result: Any) -> bool:
    return False


class SentinelError(Exception):
    pass
