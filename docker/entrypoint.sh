#!/bin/sh
# Start one replica of the gateway of the authority LA_CODE.
#
# The authority's signing key and secrets live in ONE directory that every
# replica mounts (secrets_dir in its gateway.yaml: /var/lib/cafgw/secrets);
# a replica never makes a key of its own. With LA_MAKE_KEY=yes (the demo in
# compose.yaml) the key is made on first start when that directory has none,
# under a lock, so replicas starting together make one key between them.
# Without it (production: the directory made once by `cafgw init` or
# `cafgw keys init` and mounted into every replica, e.g. as a secret) a
# missing key stops the container with the directory it looked in.
# Then it publishes its certificate to the shared certificate volume, waits
# until every peer has published theirs (pinned in authorities.yaml), and runs.
set -eu
# LA_* and CERTS_DIR are not CAFGW_* variables: settings read every CAFGW_*.

code="${LA_CODE:?set LA_CODE to the LA code this gateway hosts}"
certs="${CERTS_DIR:-/var/lib/cafgw/certs}"

if [ "${LA_MAKE_KEY:-no}" = yes ]; then
    cafgw keys init --authority "${code}" --if-missing >&2
fi
# Written atomically; fails, naming the secrets directory, when it holds no key.
cafgw peers export --authority "${code}" --out "${certs}/${code}.pem" >/dev/null

waited=0
for peer in ${LA_PEERS:-}; do
    until [ -f "${certs}/${peer}.pem" ]; do
        if [ "${waited}" -ge 120 ]; then
            echo "cafgw-entrypoint: no certificate from peer ${peer} in ${certs} after 120 s" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
done

exec "$@"
