# Sourced by scripts/serve and scripts/test: create .venv on first use and install the pinned
# dependencies; re-install only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${SMPPGW_EXTRAS:-base}
if [ "${SMPPGW_EXTRAS:-base}" = base ] && [ -f "${stamp%-base}-test" ]; then stamp="${stamp%-base}-test"; fi
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  if [ "${SMPPGW_EXTRAS:-base}" = test ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
  else
    .venv/bin/python -m pip install -q -e .
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
