"""A Redis Cluster of the tests' own: 3 primaries and 3 replicas on loopback ports, each a
redis-server child process of this one (stopped by pid, never by name).

    LocalCluster(first_port)     start it (ports first_port .. first_port + 5), wait until it serves;
                                 LocalCluster(first_port, replicas=0): 3 primaries alone
    .url                         redis+cluster://127.0.0.1:<first_port>
    .kill_primary_of(key)        SIGKILL the primary serving a key's slot; returns its port
    .wait_until_promoted(port)   until a replica took over the killed primary's slots
    .restart(port)               start a killed node again (it rejoins as a replica)
    .stop()                      stop every node and remove its files

Run as a script, it starts a cluster, runs the command after ``--`` with TIERMEM_TEST_REDIS_URL
naming the cluster, and stops the cluster (``make test-cluster``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import redis

from fault_support import port_free

PRIMARIES = 3
NODE_TIMEOUT_MS = 2000  # how long a silent primary goes before its replica is promoted


class LocalCluster:
    def __init__(self, first_port: int, replicas: int = 1):
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli must be on PATH for a local Redis Cluster")
        self.replicas = replicas
        self.ports = list(range(first_port, first_port + PRIMARIES * (1 + replicas)))
        taken = [port for port in self.ports if not (port_free(port) and port_free(port + 10000))]  # + the bus port
        if taken:
            raise RuntimeError(f"ports {taken} are taken: a local cluster needs {self.ports[0]}-{self.ports[-1]}")
        self.url = f"redis+cluster://127.0.0.1:{first_port}"
        self.directory = tempfile.mkdtemp(prefix="tiermem-cluster-")
        self.processes: dict[int, subprocess.Popen] = {}
        try:
            for port in self.ports:
                self._start_node(port)
            self._create()
        except BaseException:
            self.stop()
            raise

    def _start_node(self, port: int) -> None:
        here = os.path.join(self.directory, str(port))
        os.makedirs(here, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--save", "", "--appendonly", "no", "--dir", here],
            cwd=here, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.client(port).ping_quietly():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start")
            time.sleep(0.05)

    def _create(self) -> None:
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        deadline = time.monotonic() + 30
        while not all(self.client(port).cluster_ok() for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        while not all(self.client(port).replicas_online() >= self.replicas for port in self.primary_ports()):
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster's replicas did not finish their first sync")
            time.sleep(0.1)

    def client(self, port: int) -> _Node:
        return _Node(port)

    def primary_ports(self) -> list[int]:
        return sorted(port for port in self.ports if port in self.processes and self.client(port).role() == "master")

    def kill_primary_of(self, key: str) -> int:
        """SIGKILL the primary that serves ``key``'s slot; returns its port."""
        slot = redis.cluster.key_slot(key.encode())
        for port in self.primary_ports():
            if self.client(port).serves(slot):
                self.processes.pop(port).send_signal(signal.SIGKILL)
                return port
        raise RuntimeError(f"no primary serves slot {slot}")

    def restart(self, port: int) -> None:
        """Start a killed node again from its cluster state: it rejoins as a replica of the
        primary that took its slots (as a supervisor restarting a crashed node would)."""
        self._start_node(port)

    def wait_until_promoted(self, dead_port: int, timeout: float = 30) -> float:
        """Seconds until every live node reports the cluster whole again without ``dead_port``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            live = [port for port in self.ports if port in self.processes]
            if all(self.client(port).cluster_ok() for port in live) and len(self.primary_ports()) == PRIMARIES:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"no replica took over from the primary on port {dead_port} within {timeout} s")

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes = {}
        shutil.rmtree(self.directory, ignore_errors=True)


class _Node:
    """One node, asked about itself with a client that gives up quickly."""

    def __init__(self, port: int):
        self.port = port

    def _ask(self, *command: str) -> object:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=2)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def ping_quietly(self) -> bool:
        try:
            return bool(self._ask("PING"))
        except redis.RedisError:
            return False

    def cluster_ok(self) -> bool:
        try:
            info = self._ask("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        return b"cluster_state:ok" in (info if isinstance(info, bytes) else str(info).encode())

    def replicas_online(self) -> int:
        try:
            info = self._ask("INFO", "replication")  # parsed: slave0 -> {"state": "online", ...}
        except redis.RedisError:
            return 0
        return sum(1 for name, value in info.items()  # type: ignore[union-attr]
                   if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online")

    def role(self) -> str:
        try:
            reply = self._ask("ROLE")
        except redis.RedisError:
            return "down"
        role = reply[0]  # type: ignore[index]
        return role.decode() if isinstance(role, bytes) else str(role)

    def serves(self, slot: int) -> bool:
        for start, end, primary, *_replicas in self._ask("CLUSTER", "SLOTS"):  # type: ignore[union-attr]
            if start <= slot <= end:
                return int(primary[1]) == self.port
        return False


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: cluster_support.py FIRST_PORT -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    first_port, command = int(argv[0]) if split else 7401, argv[split + 1:]
    cluster = LocalCluster(first_port)
    try:
        print(f"cluster: 3 primaries + 3 replicas at {cluster.url} (ports {cluster.ports[0]}-{cluster.ports[-1]})",
              flush=True)
        return subprocess.call(command, env={**os.environ, "TIERMEM_TEST_REDIS_URL": cluster.url})
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
