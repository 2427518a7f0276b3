"""`python -m gateway.worker [consume|setup]`: records `user.deactivated` and
`user.role_changed` in Redis.

One such process serves every gateway worker on every host (they all read Redis). Without
Redis there is nothing to run here: each gunicorn worker listens for itself. `setup`
declares the queue `consume` reads and exits. It runs under shared.worker: SIGTERM or
SIGINT stop it after the messages in hand, and with METRICS_PORT set it serves /metrics and
/healthz there.

Redis going away is an outage, not a bad event: the consumer holds the event and retries
it until Redis answers, so the revocation is late, never dropped into the DLQ.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import redis

from gateway.config import gateway_config
from gateway.revocation import (
    REVOKING_EVENTS,
    RedisRevocationStore,
    redis_client,
    user_deactivated_handler,
)
from shared.config import ConfigError, Env, common_config, validate_token_lifetimes
from shared.messaging import Consumer, transient_errors
from shared.observability import configure_logging
from shared.worker import (
    Command,
    consumer_from_config,
    consumer_task,
    run_worker,
    setup_topology,
    worker_main,
)

log = logging.getLogger("gateway.worker")

CONSUMER_NAME = "gateway"

# Besides the shared defaults: Redis unreachable, or too slow to answer.
is_transient = transient_errors(redis.ConnectionError, redis.TimeoutError)


def build_consumer(env: Env) -> Consumer:
    """The revocation consumer for the configured broker and Redis."""
    config = {**common_config("gateway", env), **gateway_config(env)}
    validate_token_lifetimes(config)
    if not config["REDIS_URL"]:
        raise ConfigError(
            "REDIS_URL is not set: without Redis each gateway worker consumes revocations "
            "itself, and this process is not needed"
        )
    store = RedisRevocationStore(
        redis_client(config["REDIS_URL"], config["REDIS_TIMEOUT_SECONDS"]),
        prefix=config["GATEWAY_REDIS_PREFIX"],
        ttl_seconds=int(config["GATEWAY_REVOCATION_TTL_SECONDS"]),
    )
    return consumer_from_config(
        config,
        CONSUMER_NAME,
        list(REVOKING_EVENTS),
        user_deactivated_handler(store),
        is_transient=is_transient,
    )


def _consumer() -> Consumer:
    configure_logging("gateway-worker")
    return build_consumer(Env())


COMMANDS = {
    "consume": Command(
        "record revoking events in Redis (the default command)",
        lambda _: run_worker([consumer_task(_consumer())]),
    ),
    "setup": Command(
        "declare the queue `consume` reads, then exit", lambda _: setup_topology(_consumer())
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the consumer until SIGTERM or SIGINT, or declare its queue (`setup`)."""
    return worker_main("python -m gateway.worker", COMMANDS, argv, default="consume")


if __name__ == "__main__":
    sys.exit(main())
