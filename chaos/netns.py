"""Network namespaces joined by a bridge: one private network per broker node, cut at will.

    root namespace  -- bridge chaosbr0 (10.231.0.1/24) --+-- veth -- ns chaos-rmq1 (10.231.0.11)
                                                          +-- veth -- ns chaos-rmq2 (10.231.0.12)
                                                          +-- veth -- ns chaos-rmq3 (10.231.0.13)

Names resolve through /etc/netns/<ns>/hosts (and resolv.conf), which `ip netns exec`
mounts over /etc/hosts inside the namespace only. A partition drops (nft, inside the node's
namespace) every packet between that node and the other nodes; clients in the root
namespace still reach it, as they would a node cut off from its peers but not from the load
balancer.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "chaosbr0"
SUBNET = "10.231.0"
NETNS_ETC = Path("/etc/netns")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run an `ip`/`nft` command; CalledProcessError with its stderr when it fails."""
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


@dataclass(frozen=True)
class Host:
    """One namespace on the bridge: its name, host name and address."""

    index: int
    netns: str
    hostname: str
    address: str

    @property
    def veth(self) -> str:
        return f"chaosv{self.index}"


class Network:
    """The bridge and one namespace per host; `destroy` removes all of it (idempotent)."""

    def __init__(self, count: int) -> None:
        self.hosts = [
            Host(i, f"chaos-rmq{i}", f"rmq{i}", f"{SUBNET}.{10 + i}") for i in range(1, count + 1)
        ]
        self.gateway = f"{SUBNET}.1"

    def create(self) -> None:
        self.destroy()  # a run that was killed outright may have left its network behind
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        hosts_file = "127.0.0.1 localhost\n" + "".join(
            f"{h.address} {h.hostname}\n" for h in self.hosts
        )
        for host in self.hosts:
            run("ip", "netns", "add", host.netns)
            etc = NETNS_ETC / host.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_file)
            # No name server is reachable from here: a lookup must fail at once (a closed
            # local port), not after the host's resolver timeouts on every client connection.
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            peer = f"{host.veth}p"
            run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer)
            run("ip", "link", "set", host.veth, "master", BRIDGE)
            run("ip", "link", "set", host.veth, "up")
            run("ip", "link", "set", peer, "netns", host.netns)
            self.exec(host, "ip", "link", "set", "lo", "up")
            self.exec(host, "ip", "addr", "add", f"{host.address}/24", "dev", peer)
            self.exec(host, "ip", "link", "set", peer, "up")
            self.exec(host, "ip", "route", "add", "default", "via", self.gateway)

    def exec(self, host: Host, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", host.netns, *argv, check=check)

    def command(self, host: Host, argv: list[str]) -> list[str]:
        """argv run inside the host's namespace."""
        return ["ip", "netns", "exec", host.netns, *argv]

    def partition(self, host: Host) -> None:
        """Drop every packet between `host` and the other hosts (both ways)."""
        others = ", ".join(h.address for h in self.hosts if h is not host)
        rules = (
            "table inet chaos {\n"
            "  chain input {\n    type filter hook input priority 0; policy accept;\n"
            f"    ip saddr {{ {others} }} drop\n  }}\n"
            "  chain output {\n    type filter hook output priority 0; policy accept;\n"
            f"    ip daddr {{ {others} }} drop\n  }}\n"
            "}\n"
        )
        subprocess.run(
            self.command(host, ["nft", "-f", "-"]),
            input=rules,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def heal(self, host: Host) -> None:
        """Undo `partition`."""
        self.exec(host, "nft", "delete", "table", "inet", "chaos", check=False)

    def kill_everything_in(self, host: Host) -> None:
        """SIGKILL every process left in the namespace (the node's epmd daemonizes itself)."""
        found = run("ip", "netns", "pids", host.netns, check=False).stdout.split()
        for pid in found:
            run("kill", "-9", pid, check=False)

    def destroy(self) -> None:
        for host in self.hosts:
            if host.netns in run("ip", "netns", "list", check=False).stdout:
                self.kill_everything_in(host)
            # Deleting the namespace deletes its end of the veth pair, and with it ours.
            run("ip", "netns", "delete", host.netns, check=False)
            run("ip", "link", "delete", host.veth, check=False)
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        run("ip", "link", "delete", BRIDGE, check=False)
