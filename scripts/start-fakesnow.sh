#!/usr/bin/env bash
# Installs fakesnow into a project venv if it is missing, then starts it behind the
# project's compatibility shim (crates/adapter-snowflake/tests/fakesnow/shim.py) on
# 127.0.0.1, for the Snowflake store's tests.
#
#   scripts/start-fakesnow.sh --install-only     create/refresh the venv, start nothing
#   scripts/start-fakesnow.sh [--port 8765]      run in the foreground (Ctrl-C stops it)
#   scripts/start-fakesnow.sh --background [--port 8765] [--pid-file F] [--log-file F]
#       start it in the background, wait until it answers, print
#       `export CA_NOTIFY_FAKESNOW_URL=http://127.0.0.1:PORT` on stdout
#
# Without CA_NOTIFY_FAKESNOW_URL the tests start their own shim from the same venv, so
# --install-only is all CI needs. Environment: PYTHON (the interpreter that makes the
# venv, default python3), CA_NOTIFY_FAKESNOW_VENV (default: the venv next to the shim).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/crates/adapter-snowflake/tests/fakesnow"
venv="${CA_NOTIFY_FAKESNOW_VENV:-$dir/.venv}"
python_bin="${PYTHON:-python3}"
port=8765
mode=foreground
pid_file="$dir/fakesnow.pid"
log_file="$dir/fakesnow.log"

while [ $# -gt 0 ]; do
  case "$1" in
    --install-only) mode=install ;;
    --background) mode=background ;;
    --port) port="$2"; shift ;;
    --pid-file) pid_file="$2"; shift ;;
    --log-file) log_file="$2"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "start-fakesnow.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if ! "$venv/bin/python" -c 'import fakesnow.server, uvicorn, pyarrow, duckdb, sqlglot' >/dev/null 2>&1; then
  if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "start-fakesnow.sh: fakesnow 0.12.1 needs Python >= 3.11; set PYTHON to one" >&2
    exit 1
  fi
  echo "start-fakesnow.sh: installing fakesnow into $venv" >&2
  if ! "$python_bin" -m venv --clear "$venv"; then
    echo "start-fakesnow.sh: '$python_bin -m venv' failed; on Debian: apt-get install -y python3-venv" >&2
    exit 1
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$dir/requirements.txt" >&2
  "$venv/bin/python" -c 'import fakesnow.server, uvicorn, pyarrow, duckdb, sqlglot'
fi

case "$mode" in
  install)
    echo "start-fakesnow.sh: fakesnow is installed in $venv" >&2
    ;;
  foreground)
    exec "$venv/bin/python" "$dir/shim.py" --host 127.0.0.1 --port "$port" --log-level info
    ;;
  background)
    nohup "$venv/bin/python" "$dir/shim.py" --host 127.0.0.1 --port "$port" --log-level warning \
      >"$log_file" 2>&1 </dev/null &
    echo $! >"$pid_file"
    url="http://127.0.0.1:$port"
    if ! "$venv/bin/python" - "$url" <<'PY'
import sys, time, urllib.request
url = sys.argv[1] + "/__shim/health"
deadline = time.time() + 90
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit(1)
PY
    then
      echo "start-fakesnow.sh: fakesnow did not answer on $url; log follows" >&2
      cat "$log_file" >&2 || true
      kill "$(cat "$pid_file")" 2>/dev/null || true
      exit 1
    fi
    echo "export CA_NOTIFY_FAKESNOW_URL=$url"
    ;;
esac
