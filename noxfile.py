"""The Django version matrix: Django 5.2 LTS on 3.11 and 3.12, the newest Django on 3.13."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

MATRIX = [("3.11", "django>=5.2,<5.3"), ("3.12", "django>=5.2,<5.3"), ("3.13", "django>=6.0,<7")]


@nox.session
@nox.parametrize(("python", "django"), MATRIX, ids=["dj52-py311", "dj52-py312", "dj6-py313"])
def tests(session: nox.Session, django: str) -> None:
    session.install("-e", ".[dev,bench]", django)
    session.run("scripts/run-tests.sh", *session.posargs, external=True,
                env={"PY": os.path.join(session.bin, "python")})  # fmt: skip
