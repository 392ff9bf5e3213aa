# Removes the keyrings that ceph-keyring-<id>.service installed for clients no longer configured
# (modules/ceph-client.nix runs it at every activation: boot and switch).
# Usage: sh ceph-keyrings-prune.sh [CONFIGURED_ID...]
# Only keyrings this module installed are touched: each install leaves a marker named after the
# client in $MARKERS; a keyring put into /etc/ceph by hand (an admin keyring) has none.
# KEYRINGS and MARKERS are overridable for the tests only.
keyrings=${KEYRINGS:-/etc/ceph}
markers=${MARKERS:-/var/lib/ceph-client/keyrings}
[ -d "$markers" ] || exit 0
for marker in "$markers"/*; do
  [ -f "$marker" ] || continue
  id=${marker##*/}
  keep=
  for configured in "$@"; do
    [ "$configured" = "$id" ] && keep=1
  done
  [ -n "$keep" ] && continue
  rm -f "$keyrings/ceph.client.$id.keyring" "$marker"
  echo "removed $keyrings/ceph.client.$id.keyring: client.$id is no longer configured"
done
