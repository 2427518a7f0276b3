"""Network namespaces joined by a bridge: one private network per broker node, cut at will.

    root namespace  -- bridge chx0br (10.232.0.1/24) --+-- veth -- ns chx0-rmq1 (10.232.0.11)
                                                        +-- veth -- ns chx0-rmq2 (10.232.0.12)
                                                        +-- veth -- ns chx0-rmq3 (10.232.0.13)

Several runs may share a machine (a soak beside `make chaos`): each claims a free slot
(0 to 15, an flock held for as long as the process lives, so a killed run frees it) and
names its bridge, namespaces, veths and subnet after it; clean-up touches only its own.

Names resolve through /etc/netns/<ns>/hosts (and resolv.conf), which `ip netns exec`
mounts over /etc/hosts inside the namespace only. A partition drops (nft, inside the node's
namespace) every packet between that node and the other nodes; clients in the root
namespace still reach it, as they would a node cut off from its peers but not from the load
balancer.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

NETNS_ETC = Path("/etc/netns")
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
SLOTS = 16


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
    veth: str  # our end of its veth pair; its end is `<veth>p`


def claim_slot() -> tuple[int, IO[str]]:
    """A slot no other live run holds, and the open lock file that holds it."""
    for slot in range(SLOTS):
        handle = open(LOCK_DIR / f"flask-suite-chaos-{slot}.lock", "w")  # held open: the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return slot, handle
    raise RuntimeError(f"all {SLOTS} chaos network slots are taken by running runs")


class Network:
    """The bridge and one namespace per host; `destroy` removes all of it (idempotent)."""

    def __init__(self, count: int) -> None:
        self.slot, self._lock = claim_slot()
        prefix = f"chx{self.slot}"
        subnet = f"10.232.{self.slot}"
        self.bridge = f"{prefix}br"
        self.hosts = [
            Host(i, f"{prefix}-rmq{i}", f"rmq{i}", f"{subnet}.{10 + i}", f"{prefix}v{i}")
            for i in range(1, count + 1)
        ]
        self.gateway = f"{subnet}.1"

    def create(self) -> None:
        self.destroy()  # a run that was killed outright may have left its network behind
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        # With the bridge netfilter on, the host's FORWARD policy (DROP once Docker runs)
        # applies between the nodes on this bridge too: let their traffic through.
        if shutil.which("iptables"):
            run("iptables", "-I", "FORWARD", *self._forward_rule, check=False)
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
            run("ip", "link", "set", host.veth, "master", self.bridge)
            run("ip", "link", "set", host.veth, "up")
            run("ip", "link", "set", peer, "netns", host.netns)
            self.exec(host, "ip", "link", "set", "lo", "up")
            self.exec(host, "ip", "addr", "add", f"{host.address}/24", "dev", peer)
            self.exec(host, "ip", "link", "set", peer, "up")
            self.exec(host, "ip", "route", "add", "default", "via", self.gateway)

    @property
    def _forward_rule(self) -> tuple[str, ...]:
        return ("-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT")

    def release(self) -> None:
        """Give the slot back (after `destroy`); another run may take it."""
        self._lock.close()

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
        run("ip", "link", "delete", self.bridge, check=False)
        if shutil.which("iptables"):
            # Every copy a killed run may have left: -D deletes one at a time.
            while (
                run("iptables", "-D", "FORWARD", *self._forward_rule, check=False).returncode == 0
            ):
                pass
