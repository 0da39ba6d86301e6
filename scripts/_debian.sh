# Sourced by scripts/test: make sure a program from a Debian package is on this machine,
# installing the package with apt-get when it is missing. The package's own service is not
# started (policy-rc.d says no): the tests start their own servers on free loopback ports.
need_deb() {  # need_deb PACKAGE PROGRAM
  command -v "$2" >/dev/null 2>&1 && return 0
  local sudo="" policy=/usr/sbin/policy-rc.d made_policy=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian package $1 (for $2)" >&2
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
  fi
  local apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0"
  $apt install --no-install-recommends "$1" >/dev/null 2>&1 \
    || { $apt update >/dev/null 2>&1 && $apt install --no-install-recommends "$1" >/dev/null; }
  local rc=$?
  [ -z "$made_policy" ] || $sudo rm -f "$policy"
  if [ $rc -ne 0 ] || ! command -v "$2" >/dev/null 2>&1; then
    echo "error: could not install Debian package $1 (needed for $2)" >&2
    return 1
  fi
}
