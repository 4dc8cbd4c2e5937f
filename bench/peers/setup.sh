#!/usr/bin/env bash
# Prepare the Python venv used by bench/peers/peers.py.
#
#   bash bench/peers/setup.sh          # creates $REPO/.bench-venv if needed
#
# Installs the pinned peers (PyPI chunk-memo==0.1.5 and joblib) into
# $REPO/.bench-venv (git-ignored). Idempotent: when both are already importable
# at the right version it returns at once without touching the network.
# On any failure it prints one line to stderr and exits 3, which callers treat
# as "skip the Python peers".
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${BENCH_VENV:-$repo/.bench-venv}"
py="$venv/bin/python"
want_cm="0.1.5"

fail() {
  echo "bench/peers/setup.sh: $1 (Python peers will be skipped)" >&2
  exit 3
}

# Fast path: already installed.
if [ -x "$py" ] && "$py" - "$want_cm" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
import chunk_memo, joblib  # noqa: F401
sys.exit(0 if version("chunk-memo") == sys.argv[1] else 1)
PY
then
  exit 0
fi

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for cand in python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then python="$cand"; break; fi
  done
fi
[ -n "$python" ] || fail "no python3 found on PATH"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  >/dev/null 2>&1 || fail "$python is older than 3.10 (chunk-memo 0.1.5 needs >= 3.10)"

if [ ! -x "$py" ]; then
  "$python" -m venv "$venv" >/dev/null 2>&1 || fail "could not create venv at $venv (python3-venv missing?)"
fi

log="$(mktemp "${TMPDIR:-/tmp}/bench-peers-pip.XXXXXX")"
if ! "$py" -m pip install --disable-pip-version-check -q \
      "chunk-memo==$want_cm" joblib >"$log" 2>&1; then
  last="$(grep -v '^\s*$' "$log" | tail -n 1)"
  rm -f "$log"
  fail "pip install chunk-memo==$want_cm joblib failed: ${last:-unknown error}"
fi
rm -f "$log"

# Precompile the installed packages so the first timed run (and every worker
# process joblib/loky or ProcessPoolExecutor starts) does not pay for it.
"$py" -m compileall -q "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
  >/dev/null 2>&1 || true

"$py" -c 'import chunk_memo, joblib' >/dev/null 2>&1 || fail "installed packages do not import"
exit 0
