#!/usr/bin/env bash
# The tests create a vhost per test; the management API does that in 0.1 s
# where rabbitmqctl takes a second (it boots an Erlang VM). Enable it when the
# broker is local and we may; the tests fall back to rabbitmqctl otherwise.
set -u
command -v rabbitmq-plugins >/dev/null 2>&1 || exit 0
if ! rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
  echo "enabling the RabbitMQ management plugin (used by the tests to create vhosts quickly)"
  timeout 120 rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 ||
    echo "could not enable rabbitmq_management; tests will use rabbitmqctl (slower)" >&2
fi
exit 0
