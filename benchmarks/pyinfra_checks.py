"""The pyinfra side of P1: the checks of a no-op `gpumod plan` on N pods, done with pyinfra's API.

Run as its own process by ``plan_fleet.py`` (so its start-up counts, as gpumod's does) with a JSON
file listing the pods. For every pod, in pyinfra's own way (one fact = one command, each fact
gathered on all hosts in parallel, a barrier between facts): both nvidia-smi queries
(``--query-gpu`` and ``--query-compute-apps``), the service's ``/proc/PID/stat`` (the pid read
from gpumod's record) and its health URL (curl on the pod). ``get_fact`` greenlets are spawned
directly, which is faster than a deploy file (those run per host, one after another). Prints one
JSON line: how many pods answered every check. pyinfra is a benchmark-only dependency (not in
gpumod's).
"""

from __future__ import annotations

import json
import sys

import gevent
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.facts import get_fact
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.server import Command


def checks(pod: dict) -> list[str]:
    smi = f"{pod['sim_dir']}/bin/nvidia-smi"
    record = f"{pod['state_dir']}/pods/{pod['name']}/services/{pod['service']}.json"
    return [
        f"{smi} --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits",
        f"{smi} --query-compute-apps=pid,used_memory,gpu_uuid --format=csv,noheader,nounits",
        f"cat /proc/$(sed -n 's/^ *\"pid\": \\([0-9]*\\),*$/\\1/p' {record})/stat",
        f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{pod['port']}/health",
    ]


def main() -> int:
    pods = json.load(open(sys.argv[1]))
    hosts = [
        (pod["ip"], {"ssh_user": "root", "ssh_key": pod["key"], "ssh_known_hosts_file": pod["known_hosts"],
                     "ssh_strict_host_key_checking": "yes", "pod": pod})
        for pod in pods
    ]
    state = State(Inventory((hosts, {})), Config(PARALLEL=len(hosts)))
    with ctx_state.use(state):
        connect_all(state)
        answers: dict[str, list[str]] = {}
        for index in range(4):  # one fact after the other, each on all hosts at once
            def one(host, index=index):
                with ctx_host.use(host):
                    return get_fact(state, host, Command, kwargs={"command": checks(host.data.pod)[index]})

            greenlets = {state.pool.spawn(one, host): host for host in state.inventory.get_active_hosts()}
            gevent.joinall(list(greenlets))
            for g, host in greenlets.items():
                answers.setdefault(host.name, []).append(g.get() or "")
        for host in state.inventory.get_active_hosts():
            host.disconnect()
    ok = sum(1 for a in answers.values() if len(a) == 4 and a[0] and a[2] and a[3].strip() == "200")
    print(json.dumps({"pods": len(pods), "answered": ok}))
    return 0 if ok == len(pods) else 1


if __name__ == "__main__":
    sys.exit(main())
