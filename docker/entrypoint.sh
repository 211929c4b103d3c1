#!/bin/sh
# Start one gateway: make its signing key on first start (in its own volume),
# publish its certificate to the shared certificate volume, wait until every
# peer has published theirs (they are pinned in authorities.yaml), then run.
set -eu
# LA_CODE and LA_PEERS are not CAFGW_* variables: settings read every CAFGW_*.

code="${LA_CODE:?set LA_CODE to the LA code this gateway hosts}"
certs="${CERTS_DIR:-/var/lib/cafgw/certs}"
keys="/var/lib/cafgw/keys/${code}"

if [ ! -f "${keys}/key.pem" ]; then
    cafgw keys init --authority "${code}"
fi
cp "${keys}/cert.pem" "${certs}/${code}.pem.tmp"
mv "${certs}/${code}.pem.tmp" "${certs}/${code}.pem"

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
