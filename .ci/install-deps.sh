#!/usr/bin/env bash
# Installs the Debian packages advect needs to build and test, only those that are missing.
# Used by the README's quick-start commands and by CI. Needs root or sudo for apt-get.
set -euo pipefail
packages=(cmake make gcc g++ pkg-config librandom123-dev libcriterion-dev libfftw3-dev libpng-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "advect: installing missing packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # env after sudo: sudo's env_reset would drop a variable set before it.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
