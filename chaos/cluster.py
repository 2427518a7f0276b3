"""A three-node RabbitMQ cluster, one node per network namespace, that the harness may break.

Every node has the standard ports inside its own namespace (AMQP 5672, distribution 25672,
its own epmd on 4369), the same Erlang cookie, and `pause_minority`: a node cut off from the
majority stops serving and closes its clients' connections, so they reconnect to a node
that can still make progress. Quorum queues declared once the three nodes have joined get a
member on each. The shared broker is never touched.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import pika.exceptions

from chaos.netns import Host, Network
from tests.support.nodes import RABBITMQ_SBIN, wait_until_amqp_accepts

AMQP_PORT = 5672


class ClusterNode:
    """One broker node in its namespace: start, SIGKILL, restart, rabbitmqctl."""

    def __init__(
        self, network: Network, host: Host, base_dir: Path, cookie: str, peers: list[str]
    ) -> None:
        self.network = network
        self.host = host
        self.base_dir = base_dir
        self.nodename = f"rabbit@{host.hostname}"
        self.process: subprocess.Popen[bytes] | None = None
        base_dir.mkdir(parents=True, exist_ok=True)
        (base_dir / "rabbitmq-env.conf").write_text("")
        (base_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {AMQP_PORT}\n"
            "loopback_users = none\n"
            "cluster_partition_handling = pause_minority\n"
            # Blank nodes join the listed peers on boot: no join_cluster round trips.
            "cluster_formation.peer_discovery_backend = classic_config\n"
            # The first node boots while its peers are down: give up on them quickly and
            # form the cluster, which they join once started (each failed try can cost
            # seconds; the default ten tries per peer outlast the start-up wait).
            "cluster_formation.discovery_retry_limit = 1\n"
            "cluster_formation.discovery_retry_interval = 500\n"
            + "".join(
                f"cluster_formation.classic_config.nodes.{k} = {peer}\n"
                for k, peer in enumerate(peers, start=1)
            )
            + "log.console = false\nlog.file.level = warning\n"
        )
        (base_dir / "enabled_plugins").write_text("[].\n")
        cookie_file = base_dir / ".erlang.cookie"
        cookie_file.write_text(cookie)
        os.chmod(cookie_file, 0o400)
        self.env = {
            **os.environ,
            "HOME": str(base_dir),  # the node and the CLI read the cookie from $HOME
            "RABBITMQ_CONF_ENV_FILE": str(base_dir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_CONFIG_FILE": str(base_dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base_dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base_dir / "log"),
            "RABBITMQ_PID_FILE": str(base_dir / "rabbitmq.pid"),
        }

    @property
    def address(self) -> str:
        return self.host.address

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Boot the node (its data kept from an earlier run) without waiting."""
        out = (self.base_dir / "server.log").open("ab")
        with out:
            self.process = subprocess.Popen(
                self.network.command(self.host, [os.path.join(RABBITMQ_SBIN, "rabbitmq-server")]),
                env=self.env,
                cwd=self.base_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_accepting(self, timeout: float = 120.0) -> None:
        params = pika.ConnectionParameters(
            self.address, AMQP_PORT, connection_attempts=1, socket_timeout=2
        )
        wait_until_amqp_accepts(params, self.process, self.nodename, self.log_tail, timeout)

    def accepting(self) -> bool:
        params = pika.ConnectionParameters(
            self.address, AMQP_PORT, connection_attempts=1, socket_timeout=1
        )
        try:
            pika.BlockingConnection(params).close()
            return True
        except pika.exceptions.AMQPError:
            return False

    def kill(self) -> None:
        """SIGKILL the node's whole process group: no shutdown, no goodbye to its peers."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """rabbitmqctl against this node, run inside its namespace."""
        argv = [os.path.join(RABBITMQ_SBIN, "rabbitmqctl"), "-n", self.nodename, *args]
        result = subprocess.run(
            self.network.command(self.host, argv),
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.stdout

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.base_dir / "server.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "".join(text.splitlines(keepends=True)[-lines:])


class Cluster:
    """The network and its nodes; `stop` kills every node and removes the namespaces."""

    def __init__(self, base_dir: Path, size: int = 3) -> None:
        self.network = Network(size)
        cookie = secrets.token_hex(16)
        peers = [f"rabbit@{host.hostname}" for host in self.network.hosts]
        self.nodes = [
            ClusterNode(self.network, host, base_dir / host.hostname, cookie, peers)
            for host in self.network.hosts
        ]

    def start(self) -> None:
        self.network.create()
        # The first node forms the cluster; the others, started once it runs, find it
        # (started together, each could find no peer and form a cluster of its own).
        first, *others = self.nodes
        first.start()
        first.wait_until_accepting()
        for node in others:
            node.start()
        with ThreadPoolExecutor(len(others)) as pool:
            list(pool.map(lambda n: n.wait_until_accepting(), others))
        running = first.ctl("cluster_status", "--formatter", "json")
        for node in self.nodes:
            if node.nodename not in running:
                raise RuntimeError(f"{node.nodename} did not join: {running}")

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """rabbitmqctl against the first node that answers."""
        failure: Exception | None = None
        for node in self.nodes:
            if not node.running():
                continue
            try:
                return node.ctl(*args, timeout=timeout)
            except (subprocess.SubprocessError, OSError) as exc:
                failure = exc
        raise RuntimeError(f"no node answered rabbitmqctl {args}: {failure}")

    def node(self, nodename: str) -> ClusterNode:
        return next(n for n in self.nodes if n.nodename == nodename)

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.kill()
            except (OSError, subprocess.SubprocessError):
                pass
        self.network.destroy()
        self.network.release()
