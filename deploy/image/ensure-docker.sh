#!/bin/sh
# Docker and debootstrap for the image test (tests/deploy/test_image.py, `make image-check`):
# Debian's docker.io and debootstrap are installed when missing, and dockerd is started when its
# socket does not answer (machines without systemd, such as CI's). Run by `make test`.
#
# Without root or password-less sudo it changes nothing and says so: the image test then skips,
# naming what it lacks, and the rest of the suite runs as usual. Likewise when the packages
# cannot be installed (no mirror reachable) or dockerd cannot start here (no cgroups or overlay
# filesystem in a container, say). It waits for dockerd only right after starting it.
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
    # shellcheck disable=SC2086 # one word per package
    if ! { $SUDO apt-get update -q &&
        $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends $missing; }; then
        echo "ensure-docker: could not install$missing (the image test will skip)"
        exit 0
    fi
fi

$SUDO docker info >/dev/null 2>&1 && exit 0

# A dockerd that runs but does not answer was started before (by an earlier run, still starting
# or stuck): another one would only fail on its lock, and waiting again gains nothing.
if pgrep -x dockerd >/dev/null 2>&1; then
    echo "ensure-docker: dockerd runs but does not answer (the image test will skip)"
    exit 0
fi

log=/var/log/dockerd.log
echo "ensure-docker: starting dockerd (log: $log)"
$SUDO sh -c "nohup dockerd >>$log 2>&1 &"
tries=0
until $SUDO docker info >/dev/null 2>&1; do
    tries=$((tries + 1))
    # Gone already (it could not start here), or still silent after a minute.
    if [ "$tries" -ge 60 ] || { [ "$tries" -ge 3 ] && ! pgrep -x dockerd >/dev/null 2>&1; }; then
        echo "ensure-docker: dockerd does not answer (the image test will skip):"
        $SUDO tail -n 20 "$log"
        exit 0
    fi
    sleep 1
done
