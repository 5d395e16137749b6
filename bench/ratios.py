#!/usr/bin/env python3
"""Prints hit-path throughput per peer and thread count from criterion's estimates, and the
ratios the core issue sets goals for (pagecore vs quick_cache, vs the atomic lower bound)."""
import json, pathlib, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion/hit_path")
rows = {}
for est in root.glob("*/*/new/estimates.json"):
    peer, threads = est.parts[-4], int(est.parts[-3])
    ns = json.loads(est.read_text())["mean"]["point_estimate"]  # ns per iteration (= threads ops)
    rows[(peer, threads)] = threads / ns * 1e3  # million ops per second
threads = sorted({t for _, t in rows})
peers = sorted({p for p, _ in rows}, key=lambda p: -rows.get((p, max(threads)), 0))
print("| peer | " + " | ".join(f"{t} thread(s), Mops/s" for t in threads) + " |")
print("|---|" + "---|" * len(threads))
for p in peers:
    print(f"| {p} | " + " | ".join(f"{rows.get((p, t), float('nan')):.1f}" for t in threads) + " |")
for t in threads:
    pc = rows.get(("pagecore", t))
    if pc:
        for peer in ("pagecore_counted", "quick_cache", "atomic_bound", "moka", "dashmap", "mutex_lru"):
            if (peer, t) in rows:
                print(f"{t} thread(s): pagecore / {peer} = {pc / rows[(peer, t)]:.2f}x")
