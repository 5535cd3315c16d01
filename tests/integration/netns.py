"""Network namespaces joined by veth pairs: workers on addresses of their own, links that can be cut.

The broker stays in this (the root) namespace on an address of its own (`BROKER`, on `lo`); each
worker namespace gets a veth pair to the root namespace and a default route through it. Cutting a
worker's link (`cut`) takes its veth down: its packets go nowhere, the process keeps running, as
when a switch port or a node's network fails. Needs root and `ip`; `Network.unavailable()` says why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

BROKER = "10.77.0.1"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


@dataclass
class Network:
    """Worker namespaces `names`, each on 10.77.<n>.2 with its root-side peer on 10.77.<n>.1."""

    names: tuple[str, ...]
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000}")
    made: list[str] = field(default_factory=list)

    @staticmethod
    def unavailable() -> str | None:
        """Why namespaces cannot be made here (None: they can)."""
        if os.geteuid() != 0:
            return "needs root to create network namespaces and veth pairs"
        if shutil.which("ip") is None:
            return "needs the `ip` command (iproute2)"
        probe = f"sgprobe{os.getpid() % 10000}"
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
        ip("netns", "del", probe, check=False)
        return None

    def namespace(self, name: str) -> str:
        return f"sg{name}{self.tag}"

    def root_link(self, name: str) -> str:
        return f"sg{name}{self.tag}r"

    def address(self, name: str) -> str:
        return f"10.77.{self.names.index(name) + 1}.2"

    def wrapper(self, name: str) -> list[str]:
        """The command prefix that runs a process in `name`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(name)]

    def __enter__(self) -> Network:
        try:
            ip("addr", "add", f"{BROKER}/32", "dev", "lo")
            self.made.append("broker-address")
            for number, name in enumerate(self.names, start=1):
                ns, root = self.namespace(name), self.root_link(name)
                ip("netns", "add", ns)
                self.made.append(ns)
                ip("link", "add", root, "type", "veth", "peer", "name", "eth0", "netns", ns)
                ip("addr", "add", f"10.77.{number}.1/24", "dev", root)
                ip("link", "set", root, "up")
                ip("-n", ns, "addr", "add", f"10.77.{number}.2/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "route", "add", "default", "via", f"10.77.{number}.1")
        except Exception:
            self.__exit__()
            raise
        return self

    def cut(self, name: str) -> None:
        """Take `name`'s link down: nothing it sends arrives, nothing reaches it."""
        ip("link", "set", self.root_link(name), "down")

    def restore(self, name: str) -> None:
        ip("link", "set", self.root_link(name), "up")

    def __exit__(self, *exc: object) -> None:
        for item in reversed(self.made):
            if item == "broker-address":
                ip("addr", "del", f"{BROKER}/32", "dev", "lo", check=False)
            else:
                ip("netns", "del", item, check=False)  # takes its veth pair with it
        self.made.clear()
