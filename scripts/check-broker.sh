#!/usr/bin/env bash
# Fails with a clear message when RabbitMQ (or PostgreSQL, for tests) is not answering.
set -u
host=${CAFGW_BROKER_HOST:-127.0.0.1}
port=${CAFGW_BROKER_PORT:-5672}
if ! timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
  echo "RabbitMQ is not answering on $host:$port." >&2
  echo "Start it with: rabbitmq-server -detached   (then wait a few seconds and try again)" >&2
  exit 1
fi
