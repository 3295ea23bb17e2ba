#!/usr/bin/env bash
# The suite against the newest release of every dependency, our upper bounds ignored,
# so the next breaking major release (redis-py 9, Django 6.1 …) shows up here as a
# named failure instead of as a broken `make test` for the next newcomer.
#
# When every newest release already lies inside pyproject.toml's ranges, `make test`
# on a fresh checkout installed exactly those releases and ran the suite on them, so
# this only says so. Otherwise it runs the suite in a fresh venv with them.
set -euo pipefail
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
venv=.venv-newest

names=$("$PYTHON" - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
reqs = project["dependencies"] + [r for e in ("dev", "demo", "bench", "hiredis") for r in extras[e]]
print(" ".join(sorted({re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0] for r in reqs})))
PY
)

rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086 # one word per package name
"$venv/bin/python" -m pip install --quiet --upgrade $names
"$venv/bin/python" -m pip install --quiet --no-deps -e .

if outside=$("$venv/bin/python" -m pip check 2>&1); then
  echo "newest-deps: every dependency's newest release is inside our ranges; make test ran on them"
  exit 0
fi
echo "newest-deps: newest releases outside our supported ranges:"
echo "$outside" | sed 's/^/newest-deps:   /'
if PY="$venv/bin/python" scripts/run-tests.sh -q -rs "$@"; then
  echo "newest-deps: the suite passes on them; widen the ranges in pyproject.toml"
else
  echo "newest-deps: FAILED: the suite breaks on the newest releases above (see the failures)"
  exit 1
fi
