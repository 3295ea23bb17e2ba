"""The optional C kernels: the compiled module, or ``None`` where it is not in use.

``_speedups`` is built from ``_speedups.c`` at install time when a C compiler
is there (``setup.py`` marks it optional).  Without it, or with the
environment variable ``RESILIENCE_PURE_PYTHON=1`` set before the package is
imported, or in a sub-interpreter, the pure-Python kernels of ``algorithms.py``
run instead; both give the same answers to the last bit, only the C ones faster.
"""

from __future__ import annotations

import os

try:
    from . import _speedups as _compiled
except ImportError:  # no compiler at install time: the pure-Python kernels serve
    _compiled = None  # type: ignore[assignment]

__all__ = ["speedups"]

speedups = None if os.environ.get("RESILIENCE_PURE_PYTHON") else _compiled
if speedups is not None and not speedups.in_main_interpreter():
    # The C module keeps one state per process (the classes it builds), which a
    # sub-interpreter (mod_wsgi's default) would overwrite for every other one.
    speedups = None
