#!/bin/sh
# Docker and debootstrap for the image test (tests/deploy/test_image.py, `make image-check`):
# Debian's docker.io and debootstrap are installed when missing, and dockerd is started when its
# socket does not answer (machines without systemd, such as CI's). Run by `make test`.
#
# Without root or password-less sudo it changes nothing and says so: the image test then skips,
# naming what it lacks, and the rest of the suite runs as usual. Likewise when dockerd cannot
# start here (no cgroups or overlay filesystem in a container, say).
set -eu

if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=sudo
else
    echo "ensure-docker: not root and no sudo: Docker is left as it is (the image test may skip)"
    exit 0
fi

missing=
command -v dockerd >/dev/null || missing="$missing docker.io"
command -v debootstrap >/dev/null || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    $SUDO apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends $missing
fi

$SUDO docker info >/dev/null 2>&1 && exit 0

log=/var/log/dockerd.log
echo "ensure-docker: starting dockerd (log: $log)"
$SUDO sh -c "nohup dockerd >>$log 2>&1 &"
tries=0
until $SUDO docker info >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "ensure-docker: dockerd does not answer after 60 s (the image test will skip):"
        $SUDO tail -n 20 "$log"
        exit 0
    fi
    sleep 1
done
