"""``@limit``'s hints admit what the docs show: ``methods=ALL`` type-checks (mypy --strict)."""

from __future__ import annotations

from pathlib import Path

from mypy import api


def test_limit_methods_all_unsafe_and_one_name_type_check(tmp_path: Path) -> None:
    use = tmp_path / "use.py"
    use.write_text(
        "from resilience_django.view_limits.compat import ALL, UNSAFE\n"
        "from resilience_django.view_limits.decorator import limit\n\n"
        'limit("1/m", methods=ALL)\n'
        'limit("1/m", methods=UNSAFE)\n'
        'limit("1/m", methods="POST")\n'
    )
    args = [str(use), "--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path / "c")]
    out, err, status = api.run(args)
    assert status == 0, out + err
