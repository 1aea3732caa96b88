#!/bin/sh
# Debian packages the project needs beyond Python, installed from Debian's registry when
# missing (make run / make test call this; nothing is fetched at run time):
#   chromium, chromium-driver  headless browser for the dashboard's end-to-end tests
#   fonts-wqy-zenhei           a Chinese TrueType font embedded in PDF reports and certificates
#   docker-compose             `docker-compose config` checks deploy/compose offline (no engine)
set -eu
PACKAGES="chromium chromium-driver fonts-wqy-zenhei docker-compose"
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
