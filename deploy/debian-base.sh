#!/bin/sh
# Make a base image for the Dockerfile without an image registry: Debian bookworm (python3 is
# 3.11) installed by debootstrap from this machine's Debian mirror, then `docker import`.
#
#   deploy/debian-base.sh [TAG]        (default dimwatch-base:bookworm; needs root, debootstrap)
#   docker build --build-arg BASE_IMAGE=dimwatch-base:bookworm ...   (docs/deployment.md)
#
# The mirror is the first one apt is configured with here (DEBIAN_MIRROR overrides it).
set -eu
tag=${1:-dimwatch-base:bookworm}
mirror=${DEBIAN_MIRROR:-$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb http' /etc/apt/sources.list | awk '{print $2}'; } | head -n 1
)}
[ -n "$mirror" ] || { echo "no Debian mirror in apt's sources; set DEBIAN_MIRROR" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# minbase: apt, dpkg and the essential packages; python-is-python3 puts `python` on PATH.
debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "$tag"
