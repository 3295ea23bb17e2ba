"""What ships: the license, extras the docs and the nox matrix agree on, an sdist without tests."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Extras for working on the project itself, not for users' installs.
TOOLING = {"dev", "docs", "bench", "demo"}


def user_extras() -> set[str]:
    return set(PYPROJECT["project"]["optional-dependencies"]) - TOOLING


def test_license_file_is_the_mit_license_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "resilience_django developers" in text


def test_every_extra_is_in_the_installation_docs_and_the_docs_name_no_other() -> None:
    docs = (ROOT / "docs" / "installation.md").read_text()
    documented = set(re.findall(r"^\| `([a-z]+)` \|", docs, flags=re.MULTILINE)) - TOOLING
    assert documented == user_extras()
    # Every `pip install ...[x]` anywhere in the docs names a real extra.
    for page in (ROOT / "docs").glob("*.md"):
        for extra in re.findall(r"resilience-django\[([a-z]+)\]", page.read_text()):
            assert extra in user_extras() | TOOLING, (page.name, extra)


def test_every_extra_is_installed_alone_by_the_nox_matrix() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    table = noxfile[noxfile.index("EXTRAS = {") :]
    table = table[: table.index("}")]
    assert set(re.findall(r'^\s+"([a-z]+)":', table, flags=re.MULTILINE)) == user_extras()


def test_sdist_holds_the_package_and_none_of_the_test_suite(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    assert not [n for n in names if n.startswith(("tests/", "demo_project/", "benchmarks/"))]
    assert "LICENSE" in names
    assert "resilience_django/testing/pytest_plugin.py" in names
    assert any(n.startswith("resilience_django/limiting/lua/") for n in names)
