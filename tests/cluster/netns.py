"""Hosts made of Linux network namespaces for the partition tests (tests/cluster/
test_partitions.py): each host a namespace with one veth link to a bridge in a switch namespace,
the test process a host too (a veth from its own namespace), addresses in 198.18.0.0/15 (the
range kept for network tests; nothing else of this machine uses it). A link is cut by setting
the switch's end of it down: packets to and from the host are dropped, connections hang as on a
real partition (no reset, no error), until it is set up again.

Everything is named `dwp<pid>-...` after the test process: closing the sandbox kills the
processes in its namespaces and deletes them (with them their veths); a sandbox left behind by a
test process that died (SIGKILL) is deleted by the next one.
"""

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import IO

from tests import children

SUBNET = "198.18"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = children.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can (tried, then removed)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    probe = f"dwp{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
    except (OSError, RuntimeError) as exc:
        return f"cannot make a network namespace: {exc}"
    ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete(namespace: str) -> None:
    """Kill what runs in a namespace, then delete it (its veths go with it)."""
    pids = ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", namespace, check=False)


def remove_stale() -> None:
    """Delete the namespaces of sandboxes whose test process is gone."""
    for line in ip("netns", "list").stdout.splitlines():
        found = re.match(r"dwp(\d+)-\S+", line)
        if found and not _alive(int(found.group(1))):
            _delete(found.group(0))


def _free_net(start: int) -> str:
    """The first 198.18.N (from N = start) that no route of this namespace uses yet (another
    sandbox's, a concurrent test run's)."""
    for n in [*range(start, 250), *range(start)]:
        if not ip("route", "show", f"{SUBNET}.{n}.0/24").stdout.strip():
            return f"{SUBNET}.{n}"
    raise RuntimeError(f"every {SUBNET}.N.0/24 is in use")


class Sandbox:
    """A switch and hosts; `host(name)` makes one and returns its address."""

    def __init__(self) -> None:
        remove_stale()
        self.prefix = f"dwp{os.getpid()}"
        self.net = _free_net(os.getpid() % 250)
        self.switch = f"{self.prefix}-switch"
        self.hosts: dict[str, int] = {}  # name -> last octet
        self.processes: list[subprocess.Popen[bytes]] = []
        try:
            ip("netns", "add", self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            # this process's own link: the client's host, 198.18.N.254
            self._wire(None, f"{self.prefix}c", 254)
        except BaseException:
            self.close()
            raise

    def _wire(self, namespace: str | None, inside: str, octet: int) -> None:
        """A veth pair: `inside` in the namespace (or here), port p<octet> on the bridge."""
        port, end = f"p{octet}", f"{self.prefix}h{octet}"  # made here under unique names
        ip("link", "add", end, "type", "veth", "peer", "name", f"{self.prefix}{port}")
        ip("link", "set", f"{self.prefix}{port}", "netns", self.switch)
        ip("-n", self.switch, "link", "set", f"{self.prefix}{port}", "name", port)
        ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        where = ["-n", namespace] if namespace else []
        if namespace:
            ip("link", "set", end, "netns", namespace)
        ip(*where, "link", "set", end, "name", inside)
        ip(*where, "addr", "add", f"{self.net}.{octet}/24", "dev", inside)
        ip(*where, "link", "set", inside, "up")

    def host(self, name: str) -> str:
        """A new host (namespace with loopback and one link); its address."""
        octet = len(self.hosts) + 1
        namespace = f"{self.prefix}-{name}"
        ip("netns", "add", namespace)
        self.hosts[name] = octet
        ip("-n", namespace, "link", "set", "lo", "up")
        self._wire(namespace, "eth0", octet)
        return f"{self.net}.{octet}"

    def cut(self, name: str) -> None:
        """Partition the host from every other (its processes keep running)."""
        ip("-n", self.switch, "link", "set", f"p{self.hosts[name]}", "down")

    def heal(self, name: str) -> None:
        ip("-n", self.switch, "link", "set", f"p{self.hosts[name]}", "up")

    def run(
        self, name: str, command: list[str], env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start a process on the host (ip netns exec execs it: the pid is the process's)."""
        out: IO[bytes]
        with log.open("ab") as out:
            process = children.popen(
                ["ip", "netns", "exec", f"{self.prefix}-{name}", *command],
                env=env,
                stdout=out,
                stderr=out,
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(20)
        for name in self.hosts:
            _delete(f"{self.prefix}-{name}")
        _delete(self.switch)
        ip("link", "del", f"{self.prefix}c", check=False)  # else it goes once the switch is gone
