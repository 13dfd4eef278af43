"""A real two-node Ray cluster for tests and benchmarks, in a network namespace of its own.

Ray binds to every interface and talks to the machine's own non-loopback address, even when told
127.0.0.1; test traffic must stay on loopback. So the cluster runs inside `unshare -n -p -f
--mount-proc`: a network namespace whose only interface is `lo` (Ray then uses 127.0.0.1 and
nothing else), and a PID namespace, so that ending its first process ends every Ray process in it
and `ray stop` inside cannot touch Ray processes outside. Commands run in the namespace with
`nsenter`. Needs root (CI is); `skip_reason()` says why not where it cannot run.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD_PORT = 6379
ADDRESS = f"127.0.0.1:{HEAD_PORT}"
BIN = Path(sys.executable).parent


def skip_reason() -> str | None:
    """Why a namespaced cluster cannot run here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (the `scale` extra; make install adds it)"
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return "unshare, nsenter or ip (util-linux, iproute2) not found"
    probe = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", "ip link set lo up"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare of a network namespace is not permitted here ({probe.stderr.strip()[:120]}); run as root"
    return None


class NamespacedCluster:
    """`ray start --head` plus `worker_nodes` x `ray start --address`, each with `cpus` CPUs, loopback only.

    Each node lives in a PID namespace of its own inside the network namespace, so a node whose start
    failed is cleaned up with `ray stop` without touching the others, and `kill_node(k)` ends node k
    (its raylet, object store and workers) at once, as a machine failing would."""

    def __init__(self, *, worker_nodes: int = 1, cpus: int = 1, env: dict | None = None):
        self.tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")    # short: Ray's socket paths must fit 107 bytes
        # Token authentication on, with a token of this cluster's own (Ray 2.60 otherwise picks a mode
        # from ~/.ray/auth_token, which a local ray.init() writes): the nodes and every driver share it.
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32), **(env or {})}
        self.env.pop("RAY_AUTH_TOKEN_PATH", None)
        self.nodes: list[subprocess.Popen] = []
        self.proc = subprocess.Popen(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c",
                                      "ip link set lo up && echo READY && exec sleep 100000"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        if "READY" not in line:
            self.close()
            raise RuntimeError(f"the network namespace did not start: {line.strip()}")
        self.init_pid = int(Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()[0])
        common = f"--node-ip-address 127.0.0.1 --num-cpus {cpus} --disable-usage-stats"
        self._start_node(f"--head --port {HEAD_PORT} {common} --include-dashboard false --temp-dir {self.tmp}")
        for _ in range(worker_nodes):
            self._start_node(f"--address {ADDRESS} {common} --temp-dir {self.tmp}")

    def _start_node(self, options: str) -> None:
        # Ray 2.60's raylet waits 15 s for its dashboard agent (a Python process that imports Ray) and
        # aborts after that. On a machine shared by many sessions the kernel gives each session (its
        # autogroup) an equal share of the CPU, and the node's processes, starting together, can miss
        # that: each node runs in a session of its own whose weight is raised while it starts and set
        # back to normal once it is up, and a failed start is tried again (up to 3 times), cleaned
        # up by `ray stop`, which sees only this node's PID namespace.
        ray = BIN / "ray"
        weight = "echo {} > /proc/self/autogroup 2>/dev/null"
        script = (f"for t in 1 2 3; do {weight.format(-10)}; if {ray} start {options} >>{self.tmp}/start.log 2>&1; "
                  f"then {weight.format(0)}; echo UP; exec sleep 100000; fi; {ray} stop --force >/dev/null 2>&1; "
                  f"done; {weight.format(0)}; echo FAILED")
        node = self.popen("unshare", "-p", "-f", "--mount-proc", "sh", "-c", script, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.nodes.append(node)
        line = node.stdout.readline()
        if "UP" not in line:
            tail = self.log_tail()
            self.close()
            raise RuntimeError(f"a Ray node did not start: {line.strip()} {tail}")

    def kill_node(self, k: int) -> None:
        """End node k (0 = head) now: SIGKILL to the first process of its PID namespace ends all of it."""
        holder = self.nodes[k].pid              # nsenter, whose child is unshare, whose child is the node's init
        for _ in range(2):
            holder = int(Path(f"/proc/{holder}/task/{holder}/children").read_text().split()[0])
        os.kill(holder, signal.SIGKILL)

    def log_tail(self) -> str:
        log = Path(self.tmp) / "start.log"
        return log.read_text()[-600:] if log.is_file() else ""

    def run(self, *args, **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (loopback only), capturing its output as text."""
        kwargs.setdefault("env", self.env)
        return subprocess.run(["nsenter", "-t", str(self.init_pid), "-n", "-m", "-p", "--", *map(str, args)],
                              capture_output=True, text=True, **kwargs)

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("env", self.env)
        return subprocess.Popen(["nsenter", "-t", str(self.init_pid), "-n", "-m", "-p", "--", *map(str, args)],
                                **kwargs)

    def close(self) -> None:
        """End the namespace's first process: the kernel ends every process in the PID namespace."""
        try:
            init = getattr(self, "init_pid", None)
            if init:
                os.kill(init, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()             # killed: reaped at once
            for node in self.nodes:      # ended with the namespace's first process
                node.wait()
        except ProcessLookupError:
            pass
        finally:
            time.sleep(0.5)
            shutil.rmtree(self.tmp, ignore_errors=True)


def without_timings(doc):
    """A JSON document without its wall/CPU timings (the only fields that differ between two runs of a
    command, here and on the cluster)."""
    if isinstance(doc, dict):
        return {k: without_timings(v) for k, v in doc.items() if "seconds" not in k}
    if isinstance(doc, list):
        return [without_timings(v) for v in doc]
    return doc
