"""Long form of the partition test: many jobs, a random schedule of partitions, pauses and heals.

    sudo .venv/bin/python bench/bench_partitions.py [--workers 3] [--jobs 240] [--minutes 4] [--seed 17]

Builds the hosts of tests/partitions/cluster.py (an infra namespace with PostgreSQL 15, Redis and
moto S3; ``--workers`` worker namespaces running `contentforge worker`), enqueues ``--jobs`` noop
jobs (random 0.5-4 s each, a 64 kB random output) in waves over ``--minutes``, and meanwhile runs a
random schedule: every few seconds one host is cut off from PostgreSQL, Redis, S3 or everything
(iptables DROP in its namespace), or its worker processes are paused (SIGSTOP: a partition in
time, as a long GC pause or a frozen VM), or its link gets a delay (tc netem, when the kernel has
it), for 2-12 s, then healed. At the end it drains, checks every job (tests/partitions/cluster.py
``verdict``: lost jobs, jobs completed twice, assets pointing at a losing attempt's file or at
wrong bytes), runs the storage sweep with grace 0 and counts orphan files, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.partitions.cluster import (  # noqa: E402 - after the path is set
    Cluster,
    Host,
    enqueue_noops,
    make_assets,
    unavailable,
    unfinished,
    verdict,
)

ACTIONS = ("postgres", "redis", "s3", "everything", "pause", "delay")


def _netem(host: Host) -> bool:
    """Whether a netem delay could be put on ``host``'s link (the module may be missing)."""
    done = subprocess.run(["ip", "netns", "exec", host.ns, "tc", "qdisc", "add", "dev", host.link, "root", "netem",
                           "delay", "200ms", "100ms"], capture_output=True, text=True, check=False)
    return done.returncode == 0


def _undelay(host: Host) -> None:
    subprocess.run(["ip", "netns", "exec", host.ns, "tc", "qdisc", "del", "dev", host.link, "root"],
                   capture_output=True, check=False)


def _signal(host: Host, sig: signal.Signals) -> None:
    assert host.proc is not None
    os.killpg(host.proc.pid, sig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=240)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--lease", type=int, default=6)
    args = ap.parse_args()
    reason = unavailable()
    if reason:
        print(f"cannot build hosts: {reason}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    cluster = Cluster(workers=args.workers, lease_seconds=args.lease).start()
    events: Counter[str] = Counter()
    started = time.monotonic()
    try:
        with cluster.connect() as conn:
            assets = make_assets(conn, args.jobs)
            jobs = []
            waves = max(1, int(args.minutes * 60 / 10))
            per_wave = -(-args.jobs // waves)
            end = started + args.minutes * 60
            next_wave = started
            wave = 0
            while time.monotonic() < end or wave * per_wave < args.jobs:
                if time.monotonic() >= next_wave and wave * per_wave < args.jobs:
                    batch = assets[wave * per_wave:(wave + 1) * per_wave]
                    jobs += [j for a in batch for j in enqueue_noops(conn, [a], sleep_seconds=round(rng.uniform(0.5, 4), 2),
                                                                     output_bytes=65536)]
                    wave += 1
                    next_wave += 10
                host = rng.choice(cluster.workers)
                action = rng.choice(ACTIONS)
                hold = rng.uniform(2, 12)
                if action == "pause":
                    _signal(host, signal.SIGSTOP)
                elif action == "delay":
                    if not _netem(host):
                        events["delay (netem missing: skipped)"] += 1
                        time.sleep(1)
                        continue
                else:
                    cluster.cut(host, None if action == "everything" else action)
                events[action] += 1
                time.sleep(hold)
                if action == "pause":
                    _signal(host, signal.SIGCONT)
                elif action == "delay":
                    _undelay(host)
                else:
                    cluster.heal(host)
                time.sleep(rng.uniform(0, 4))
            drain_from = time.monotonic()
            while unfinished(conn, jobs) and time.monotonic() - drain_from < 300:
                time.sleep(0.5)
            drained = time.monotonic() - drain_from
        v = verdict(cluster, jobs)
        fenced = sum(cluster.log(h).count("job self-fenced") for h in cluster.workers)
        lost_results = sum(cluster.log(h).count('"outcome": "lost"') for h in cluster.workers)
        print(json.dumps({
            "ok": v.ok, "summary": v.summary(), "jobs": v.jobs, "completed": v.completed,
            "lost_jobs": len(v.lost), "completed_twice": len(v.completed_twice),
            "assets_pointing_at_losers": len(v.pointing_at_loser), "wrong_bytes": len(v.wrong_bytes),
            "retried_jobs": v.retried, "files_swept": v.swept, "orphans_after_sweep": len(v.orphans),
            "self_fenced_stops": fenced, "attempts_discarded_as_lost": lost_results,
            "events": dict(events), "drain_seconds": round(drained, 1),
            "wall_seconds": round(time.monotonic() - started, 1),
            "problems": (v.lost + v.completed_twice + v.pointing_at_loser + v.wrong_bytes + v.orphans)[:10],
        }))
        return 0 if v.ok else 1
    finally:
        for host in cluster.workers:
            if host.proc is not None and host.proc.poll() is None:
                _signal(host, signal.SIGCONT)
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
