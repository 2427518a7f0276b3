"""Fault injection against the whole suite as deployed: `python -m chaos.run` (`make chaos`).

A three-node RabbitMQ cluster runs in network namespaces of its own, so a partition is a
real one; the suite runs with two of every process that scales; an open-loop driver places
orders through the gateway while the harness kills the queues' leader, partitions a node and
kills a relay, a consumer and a delivery worker at the named crash points. The verdict
counts every accepted order's notification, mail and webhook delivery (lost and duplicated)
and every HTTP error, and writes docs/reliability.md with a timeline chart.
"""
