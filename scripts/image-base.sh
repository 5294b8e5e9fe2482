#!/usr/bin/env bash
# A local base image for building Shorty's Dockerfile where no container registry
# is reachable: Debian bookworm (debootstrap, from Debian's own archive) with
# Debian's python3 and its venv module, committed with buildah. Idempotent: the
# image is named after this script's hash, so an edit here makes a new one.
#
#   scripts/image-base.sh STORAGE_ROOT   # prints the image name
#
# Needs root; installs the Debian packages buildah and debootstrap (and Debian's
# archive keyring, for an Ubuntu host) when they are missing.
set -euo pipefail

missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

root=${1:?usage: $0 STORAGE_ROOT}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
tag=$(sha256sum "$0" | cut -c1-12)
image=localhost/shorty-base:$suite-$tag
buildah=(buildah --root "$root/storage" --runroot "$root/run" --storage-driver vfs)

if "${buildah[@]}" inspect --type image "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

work=$(mktemp -d "$root/base.XXXXXX")
trap 'rm -rf "$work"' EXIT
# ca-certificates: the Dockerfile's final stage reaches PGDG over https.
debootstrap --keyring=/usr/share/keyrings/debian-archive-keyring.gpg --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# What the official slim images leave out too: the package cache and lists,
# documentation and translations.
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
    "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/locale/*
# The certificate authorities this host adds to Debian's (a proxy's, say) are the
# ones the build's pip and apt meet too.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates >/dev/null 2>&1
fi
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

container=$("${buildah[@]}" from scratch)
"${buildah[@]}" add "$container" "$work/rootfs.tar" / >/dev/null
"${buildah[@]}" config --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 "$container"
"${buildah[@]}" commit --quiet --rm "$container" "$image" >/dev/null
echo "$image"
