#!/bin/sh
# Sync an Arch mirror with rsync, as Arch's mirror sync template does: only when the upstream's
# lastupdate changed, so an unchanged mirror costs one small request (and then
# `ipfs-xfer publish` sees the same lastupdate and does nothing).
#
#   SOURCE       rsync URL of a tier-1 mirror (must serve lastupdate)
#   LASTUPDATE   its lastupdate over HTTP
#   TARGET       the local mirror directory (what `ipfs-xfer publish` publishes)
set -eu
SOURCE=${SOURCE:-rsync://rsync.example.org/archlinux}
LASTUPDATE=${LASTUPDATE:-https://mirror.example.org/archlinux/lastupdate}
TARGET=${TARGET:-/srv/mirror/archlinux}
LOCK=${LOCK:-/var/lock/ipfs-xfer-sync-mirror.lck}

exec 9>"$LOCK"
flock -n 9 || exit 0

if [ -f "$TARGET/lastupdate" ] && [ "$(curl -fsS "$LASTUPDATE")" = "$(cat "$TARGET/lastupdate")" ]; then
    exit 0
fi

# --delay-updates puts every changed file in place at the end, so a publish never sees half a
# sync; lastupdate is part of the transfer, and ipfs-xfer publishes only when it changed.
rsync -rlptH --safe-links --delete-delay --delay-updates --timeout=600 --contimeout=60 --no-motd \
    --exclude='.~tmp~' "$SOURCE/" "$TARGET/"
