#!/usr/bin/env bash
# System packages the test suite needs (Qt's offscreen/xcb libraries, fonts for OCR tests, Xvfb and
# a tray host for screenshots). Installs them with apt-get when running as root on Debian/Ubuntu;
# elsewhere prints what is missing and carries on (the tests that need them skip with a reason).
set -u
PKGS=(
  xvfb xauth trayer
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
  libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3
  libfontconfig1
  fonts-dejavu-core fonts-wqy-microhei
  iproute2
)
command -v dpkg-query >/dev/null 2>&1 || { echo "install_system_deps: not a Debian system, skipping"; exit 0; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install_system_deps: missing Debian packages (run as root to install): ${missing[*]}"
  exit 0
fi
echo "install_system_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "install_system_deps: apt-get failed; tests needing these packages will skip"
exit 0
