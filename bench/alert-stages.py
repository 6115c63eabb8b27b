#!/usr/bin/env python3
"""bench/alert-stages.py: where an alert's latency goes, from the file VIGIL_ALERT_TRACE names.

    alert-stages.py FILE

Each line of FILE (written by the daemon's AlertTrace) is `ID KERNEL READ MATCHED QUEUED
DEQUEUED SPOOLED SENDING WRITTEN ANSWERED`, CLOCK_BOOTTIME ns, 0 for a stage not passed. Prints a
Markdown table: per hop between consecutive stages that were passed, p50 / p99 / max in
microseconds, and the same for the whole (kernel -> answered). The spool's write (dequeued ->
spooled) is shown beside the chain: with the write-behind spool the delivery does not wait for it."""
import sys

STAGES = ["kernel", "read", "matched", "queued", "dequeued", "spooled", "sending", "written", "answered"]


def percentile(values, q):
    """As scripts/bench-daemon.sh takes them: the int(n * q)-th smallest (1-based)."""
    values = sorted(values)
    return values[max(0, int(len(values) * q) - 1)]


rows = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == len(STAGES) + 1:
        rows.append([int(x) for x in parts[1:]])
if not rows:
    print("no traced alert")
    sys.exit(0)
hops = {}
spooled = STAGES.index("spooled")
for stamps in rows:
    # The spool's write is its own branch (after dequeued): the delivery waits for it, or (since
    # the write-behind spool) goes on beside it; `spooled` is 0 when it ended after the answer.
    if stamps[spooled]:
        hops.setdefault("dequeued -> spooled (spool write)", []).append((stamps[spooled] - stamps[STAGES.index("dequeued")]) / 1000)
    passed = [(name, t) for name, t in zip(STAGES, stamps) if t and name != "spooled"]
    for (a, ta), (b, tb) in zip(passed, passed[1:]):
        hops.setdefault(f"{a} -> {b}", []).append((tb - ta) / 1000)
    hops.setdefault("kernel -> answered (whole)", []).append((passed[-1][1] - passed[0][1]) / 1000)
print(f"\n{len(rows)} alerts traced; us per hop:\n")
print("| hop | p50 | p99 | max |")
print("|---|---|---|---|")
chain = [name for name in STAGES if name != "spooled"]
order = [f"{a} -> {b}" for a, b in zip(chain, chain[1:])]
order.insert(order.index("dequeued -> sending") + 1, "dequeued -> spooled (spool write)")
for name in sorted(hops, key=lambda h: (order.index(h) if h in order else len(order), h)):
    v = hops[name]
    print(f"| {name} | {percentile(v, 0.5):.0f} | {percentile(v, 0.99):.0f} | {max(v):.0f} |")
