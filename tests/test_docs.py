"""Tests that keep the documentation honest: it must say what the code does.

Each test compares a page with the code it describes, so adding a check id, a
settings key or a rule field without documenting it fails here, and so does a
quick start that no longer passes the system checks.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings

from resilience_django import conf
from resilience_django.breakers import policy as breaker_policy
from resilience_django.checks import check_deploy, check_settings
from resilience_django.limiting import rules as limit_rules
from resilience_django.observability import config as metrics_config
from resilience_django.shedding import rules as shedding_rules

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "resilience_django"
LIMITING = PACKAGE / "limiting"
CHECK_ID = re.compile(r"resilience\.([EW]\d{3})")


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _ids_in_code() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        found.update(CHECK_ID.findall(path.read_text(encoding="utf-8")))
    # Ids built from a bare code: limiting/rules.py passes "E020" to a helper
    # that prefixes "resilience.".
    rules_source = (PACKAGE / "limiting" / "rules.py").read_text(encoding="utf-8")
    found.update(re.findall(r'"(E\d{3})",\s*$', rules_source, re.MULTILINE))
    found.update(re.findall(r'"(E\d{3})",\s*"', rules_source))
    return found


def _ids_in_checks_page() -> set[str]:
    return set(re.findall(r"^\| `resilience\.([EW]\d{3})`", _read("checks.md"), re.MULTILINE))


# -- checks.md ------------------------------------------------------------------------


def test_every_check_id_the_code_can_emit_has_a_row_in_checks_md() -> None:
    missing = _ids_in_code() - _ids_in_checks_page()
    assert not missing, f"check ids emitted by the code but missing from docs/checks.md: {missing}"


def test_checks_md_lists_no_id_the_code_never_emits() -> None:
    stale = _ids_in_checks_page() - _ids_in_code()
    assert not stale, f"docs/checks.md documents ids the code never emits: {stale}"


def test_code_ids_are_found_at_all() -> None:
    # Guards the two tests above against a grep that silently finds nothing.
    ids = _ids_in_code()
    assert {"E001", "E020", "E029", "E050", "E070", "E090", "W001", "W090"} <= ids


# -- settings.md ----------------------------------------------------------------------


def _sections(text: str) -> dict[str, set[str]]:
    """``## `KEY` `` headings → the ``### `sub` `` headings under each."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in text.splitlines():
        top = re.match(r"^## `([A-Z][A-Z0-9_]*)`", line)
        if top:
            current = sections.setdefault(top.group(1), set())
            continue
        if line.startswith("## "):
            current = None
            continue
        sub = re.match(r"^### `([^`]+)`", line)
        if sub and current is not None:
            current.add(sub.group(1))
    return sections


def _upper_constants(path: Path, function: str) -> set[str]:
    """Upper-case string constants in ``function``: the keys a parser reads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return {
                c.value
                for c in ast.walk(node)
                if isinstance(c, ast.Constant)
                and isinstance(c.value, str)
                and re.fullmatch(r"[A-Z][A-Z_]+", c.value)
            }
    raise AssertionError(f"{function} not found in {path}")


def _nested_keys() -> dict[str, set[str]]:
    # stall_counts_once is set in code only (the limiter's fallback), never in settings.
    code_only = {"route", "stall_counts_once"}
    breaker_keys = (set(breaker_policy.BreakerPolicy.__dataclass_fields__) - code_only) | {
        "path",
        "view",
        "methods",
    }
    return {
        "DEADLINE": _upper_constants(PACKAGE / "conf.py", "_parse_deadline"),
        "REDIS": _upper_constants(LIMITING / "redis_conn.py", "parse_redis_settings")
        | _upper_constants(PACKAGE / "conf.py", "parse_redis"),
        "FALLBACK": _upper_constants(LIMITING / "fallback.py", "parse_fallback_settings"),
        "FLEET": _upper_constants(PACKAGE / "conf.py", "_parse_fleet"),
        "METRICS": set(metrics_config.KNOWN_KEYS),
        "LIMITS": set(limit_rules.RULE_FIELDS),
        "SHEDDING": set(shedding_rules.KNOWN_KEYS),
        "BREAKERS": breaker_keys,
    }


def test_every_top_level_settings_key_has_a_heading_in_settings_md() -> None:
    documented = set(_sections(_read("settings.md")))
    missing = conf.KNOWN_KEYS - documented
    assert not missing, f"RESILIENCE keys without a '## `KEY`' heading in settings.md: {missing}"
    unknown = documented - conf.KNOWN_KEYS
    assert not unknown, f"settings.md documents keys the package rejects: {unknown}"


@pytest.mark.parametrize(
    "key", ["DEADLINE", "REDIS", "FALLBACK", "FLEET", "METRICS", "LIMITS", "SHEDDING", "BREAKERS"]
)
def test_every_nested_settings_key_has_its_own_heading(key: str) -> None:
    expected = _nested_keys()[key]
    assert len(expected) >= 3, f"found too few keys for {key}: {expected}"
    documented = _sections(_read("settings.md"))[key]
    missing = expected - documented
    assert not missing, f"settings.md: keys of {key} without a '### `key`' heading: {missing}"
    unknown = documented - expected
    assert not unknown, f"settings.md documents keys of {key} the code does not read: {unknown}"


def test_settings_md_gives_every_key_a_default() -> None:
    # One heading per key, and each says its default (or that it is required).
    text = _read("settings.md")
    blocks = re.split(r"^#{2,3} `", text, flags=re.MULTILINE)[1:]
    without = [b.splitlines()[0] for b in blocks if "Default" not in b and "Required" not in b]
    assert not without, f"settings.md headings that state no default: {without}"


# -- the quick start ------------------------------------------------------------------


def _settings_blocks(text: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return [b for b in blocks if b.startswith("# settings.py") and "RESILIENCE" in b]


def _run_settings_block(block: str) -> dict[str, object]:
    namespace: dict[str, object] = {
        "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth"],
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "os": os,
    }
    exec(compile(block, "<quick start>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_quick_start_settings_pass_the_system_checks(page: str) -> None:
    blocks = _settings_blocks((ROOT / page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no '# settings.py' block with RESILIENCE"
    for block in blocks:
        ns = _run_settings_block(block)
        with override_settings(RESILIENCE=ns["RESILIENCE"], MIDDLEWARE=ns["MIDDLEWARE"]):
            messages = check_settings()
            deploy = check_deploy()
        errors = [m for m in messages if m.level >= checks.ERROR]
        assert not errors, f"{page}: quick start fails the checks: {errors}"
        assert not [m for m in messages if m.id == "resilience.W002"], "middleware not first"
        # The quick start runs without Redis, on one process: only the documented
        # "limits are per process" and "the cache is per process" may warn on deploy.
        assert {m.id for m in deploy} <= {"resilience.W001", "resilience.W003"}


def test_the_quick_start_is_the_same_in_the_readme_and_the_docs() -> None:
    readme = _settings_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    page = _settings_blocks(_read("quickstart.md"))
    assert readme[0] == page[0]


def test_settings_examples_in_the_docs_parse_without_errors() -> None:
    # Every `RESILIENCE = {...}` example in the concept pages must be valid as written.
    for page in sorted(DOCS.glob("*.md")):
        for block in _settings_blocks(page.read_text(encoding="utf-8")):
            ns = _run_settings_block(block)
            # An example that defines CACHES (a django-redis alias for REDIS) is checked with it.
            overrides = {"RESILIENCE": ns["RESILIENCE"]}
            if "CACHES" in ns:
                overrides["CACHES"] = ns["CACHES"]
            with override_settings(**overrides):
                errors = [m for m in check_settings() if m.level >= checks.ERROR]
            assert not errors, f"{page.name}: example settings fail the checks: {errors}"


@pytest.mark.parametrize("page", ["quickstart.md", "retries.md", "shedding.md"])
def test_outbound_client_examples_run_as_written(page: str) -> None:
    # Building the clients touches no network; a renamed argument fails here.
    blocks = [
        b
        for b in re.findall(r"```python\n(.*?)```", _read(page), re.DOTALL)
        if "ResilientTransport(" in b
    ]
    assert blocks, f"{page} has no transport example"
    for block in blocks:
        exec(compile(block, f"<{page}>", "exec"), {})


# -- metrics.md and the public API -------------------------------------------------------


def test_every_metric_has_a_row_in_metrics_md_with_its_type_and_labels() -> None:
    from resilience_django import metrics

    text = _read("metrics.md")
    for kind, name, _doc, labels, _extra in metrics._SPECS.values():
        exposed = name + "_total" if kind == "Counter" else name
        row = re.search(rf"^\| `{exposed}` \| (\w+) \| ([^|]*) \|", text, re.MULTILINE)
        assert row is not None, f"metrics.md has no row for {exposed}"
        assert row.group(1) == kind.lower(), f"{exposed}: documented as {row.group(1)}"
        assert set(re.findall(r"`(\w+)`", row.group(2))) == set(labels), f"{exposed}: labels"


def test_every_public_name_is_in_the_api_table() -> None:
    import resilience_django

    index = _read("index.md")
    missing = [name for name in resilience_django.__all__ if name not in index]
    assert not missing, f"docs/index.md does not mention {missing}"


# -- the site builds ------------------------------------------------------------------


def _mkdocs() -> str | None:
    beside = Path(sys.executable).parent / "mkdocs"
    return str(beside) if beside.exists() else shutil.which("mkdocs")


def test_mkdocs_build_strict_succeeds(tmp_path: Path) -> None:
    mkdocs = _mkdocs()
    if mkdocs is None:
        if os.environ.get("RESILIENCE_REQUIRE_SERVICES") == "1":
            pytest.fail("mkdocs is not installed (it is in the dev extra)")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    # Generated by another tool; without it every link to it is a strict-mode error.
    assert (DOCS / "benchmarks.md").exists(), (
        "docs/benchmarks.md is missing: run `python benchmarks/run_all.py` (make bench)"
    )
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "settings" / "index.html").exists()
