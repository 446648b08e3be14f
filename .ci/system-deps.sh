#!/usr/bin/env bash
# System libraries for headless MuJoCo rendering (record-video of MuJoCo and robotics envs):
# EGL first, OSMesa as the fallback. Idempotent: does nothing when the libraries are present.
# Installs with apt-get as root (or through sudo); elsewhere it prints what to install and
# goes on, since everything except MuJoCo videos works without them.
set -euo pipefail
PACKAGES=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6)

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
if have_lib 'libEGL.so.1 ' && have_lib 'libEGL_mesa.so.0 ' && have_lib 'libOSMesa.so' && have_lib 'libGL.so.1 '; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: headless MuJoCo rendering needs EGL or OSMesa; install them with your package manager" \
        "(Debian/Ubuntu names: ${PACKAGES[*]})" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "note: headless MuJoCo rendering needs: apt-get install ${PACKAGES[*]} (run it as root)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
