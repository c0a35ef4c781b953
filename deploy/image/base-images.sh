#!/bin/sh
# Local stand-ins for the Dockerfile's two base images, for building and running the image where
# no image registry can be reached (tests/deploy/test_image.py, `make image-check`):
#
#   base-images.sh BASE UV
#
#   BASE  stands in for CUDA_IMAGE: Debian bookworm (debootstrap's minbase, plus python3.11 for
#         PYTHON_SOURCE=system), made from this machine's Debian mirror, with this machine's CA
#         bundle so that uv and pip inside a build trust what the host trusts (an HTTPS proxy's
#         own CA, say).
#   UV    stands in for UV_IMAGE: /uv alone, taken from the uv wheel on PyPI (the version of the
#         Dockerfile's UV_IMAGE tag).
#
# Each is made once and then reused for as long as docker keeps it: `docker rmi` one to make it
# afresh. Needs root (debootstrap, docker); DEBIAN_MIRROR overrides the mirror.
set -eu

base=${1:?usage: base-images.sh BASE-IMAGE UV-IMAGE}
uv_image=${2:?usage: base-images.sh BASE-IMAGE UV-IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}

# The first Debian (not -security) archive in apt's sources, one-line or deb822 style.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null \
        | tr ' ' '\n' | grep -E '^https?://[^ ]+/debian/?$' | head -n 1 | grep . \
        || echo http://deb.debian.org/debian
}

work=$(mktemp -d /var/tmp/csm-base-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! docker image inspect "$base" >/dev/null 2>&1; then
    mirror=$(debian_mirror)
    echo "base-images: debootstrap bookworm from $mirror -> $base"
    # minbase: apt and what it needs, nothing else; python3.11 is the image's interpreter.
    debootstrap --variant=minbase --include=python3.11 bookworm "$work/rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; exit 1; }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
        "$work/rootfs/usr/share/doc" "$work/rootfs/usr/share/man"
    # Apart from the ca-certificates package's own file, which the image's apt-get rewrites.
    mkdir -p "$work/rootfs/etc/ssl"
    cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/host-ca-bundle.crt"
    tar -C "$work/rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt' \
        --change 'CMD ["/bin/bash"]' \
        - "$base" >/dev/null
fi

if ! docker image inspect "$uv_image" >/dev/null 2>&1; then
    version=$(sed -n 's/^ARG UV_IMAGE=.*:\([0-9][0-9.]*\)$/\1/p' "$root/Dockerfile")
    echo "base-images: uv $version from PyPI -> $uv_image"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/uv" \
        "uv==$version"
    "$python" -m zipfile -e "$work"/uv/uv-*.whl "$work/uv/unpacked"
    mkdir "$work/uv/image"
    install -m 755 "$work/uv/unpacked/uv-$version.data/scripts/uv" "$work/uv/image/uv"
    tar -C "$work/uv/image" -c uv | docker import - "$uv_image" >/dev/null
fi
