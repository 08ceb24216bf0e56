#!/usr/bin/env bash
# Makes sure a Chromium for the browser tests (test/console) is on this machine: Debian's
# `chromium` package, driven by playwright-core (which downloads no browser of its own).
# Quiet when it is already there. CHROMIUM_PATH names another binary to use instead.
set -euo pipefail

bin="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$bin" ] && exit 0

if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "ensure-chromium: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable; unset it or point it at chromium" >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: $bin is missing and this is not root; install it with" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" >&2
  echo "or set CHROMIUM_PATH to a Chromium binary" >&2
  exit 1
fi

install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
echo "ensure-chromium: installing Debian's chromium for the browser tests" >&2
# A fresh machine may have no package lists yet: update them and try once more.
if ! install >/dev/null; then
  apt-get update -q >/dev/null
  install >/dev/null
fi
if [ ! -x "$bin" ]; then
  echo "ensure-chromium: apt-get installed chromium but $bin is still missing" >&2
  exit 1
fi
