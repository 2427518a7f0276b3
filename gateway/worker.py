"""`python -m gateway.worker`: consumes `user.deactivated` and records revocations in Redis.

One such process serves every gateway worker on every host (they all read Redis). Without
Redis there is nothing to run here: each gunicorn worker listens for itself.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from gateway.config import gateway_config
from gateway.revocation import (
    USER_DEACTIVATED,
    RedisRevocationStore,
    redis_client,
    user_deactivated_handler,
)
from shared.config import ConfigError, Env, common_config
from shared.messaging import Consumer
from shared.observability import configure_logging, start_metrics_server

log = logging.getLogger(__name__)

CONSUMER_NAME = "gateway"


def build_consumer(env: Env) -> Consumer:
    """The revocation consumer for the configured broker and Redis."""
    config = {**common_config("gateway", env), **gateway_config(env)}
    if not config["REDIS_URL"]:
        raise ConfigError(
            "REDIS_URL is not set: without Redis each gateway worker consumes revocations "
            "itself, and this process is not needed"
        )
    store = RedisRevocationStore(
        redis_client(config["REDIS_URL"]),
        prefix=config["GATEWAY_REDIS_PREFIX"],
        ttl_seconds=int(config["GATEWAY_REVOCATION_TTL_SECONDS"]),
    )
    return Consumer(
        config["AMQP_URL"],
        CONSUMER_NAME,
        [USER_DEACTIVATED],
        user_deactivated_handler(store),
        delivery_limit=int(config["EVENT_DELIVERY_LIMIT"]),
        retry_delays=config["EVENT_RETRY_DELAYS"],
    )


def main() -> int:
    """Run the consumer until SIGTERM or SIGINT."""
    configure_logging("gateway-worker")
    try:
        consumer = build_consumer(Env())
    except ConfigError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # /metrics and /healthz on METRICS_PORT, when set (container health checks probe it).
    start_metrics_server()
    consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
