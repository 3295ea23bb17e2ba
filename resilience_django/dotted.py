"""Import a ``module.attribute`` dotted path, with every failure as ``ImportError``; only
settings and the values they allow the admin (``admin_choices.py``) reach it."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_dotted"]


def import_dotted(path: str) -> Any:
    """The attribute ``path`` names; ``ImportError`` whatever goes wrong.

    >>> import_dotted("os.path.join").__name__
    'join'
    """
    module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ImportError(f"{path!r} is not a dotted path (module.attribute)")
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        raise
    except Exception as exc:  # whatever the module's code raised, see the docstring
        raise ImportError(f"importing {module!r} failed: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(loaded, attr)
    except Exception:  # AttributeError, or whatever a module-level __getattr__ raises
        raise ImportError(f"module {module!r} has no attribute {attr!r}") from None
