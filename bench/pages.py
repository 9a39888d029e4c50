"""The first update's fresh pages: ways of mapping them, each in fresh processes (issue 12).

    .venv/bin/python bench/pages.py [--samples 6] [--idle 3] [--variants populate,helper,two,huge,fault1,fault2]

Each sample is a new process that makes a ViT-B/16-sized weight set (bench/models.py's stack:
132 arrays, 340 MB, touched, as an update's caller holds it) and buffers for it, the first
`--mapped` MB of them mapped ahead (as `init()` maps what the memory target leaves, 142 MB on
this stack) and the rest new `np.empty` arrays; waits `--idle` seconds (a server's first update
comes long after `init()`); then times the first copy of the set into the buffers, as a first
update makes it, and a copy into the same buffers again (a steady update). Variants, interleaved
sample by sample:

* `populate`: each new buffer's pages mapped in one `MADV_POPULATE_WRITE` call (base pages),
  then the copy: what `wrc.pages.populated` does now;
* `helper`: a helper thread maps the new buffers' pages, from the last one back, while the
  copy runs from the first one (both let the GIL go): the faults beside the copy;
* `two`: two threads map the new buffers (each half of each), then the copy;
* `huge`: as `populate` with transparent huge pages allowed (`MADV_HUGEPAGE`);
* `fault1`, `fault2`: the new buffers populated by one thread, or by two (half of each),
  and no copy: whether faults run in parallel (the "first" column is then that time alone).

Prints each variant's first copy, copy again and their ratio (median and min, ms).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

_CHILD = """
import json, sys, threading, time
import numpy as np
from wrc import pages
variant, idle, mapped = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) * 1e6
madvise = pages._libc_madvise()
MADV_HUGEPAGE = 14  # (Linux's value; wrc.pages names only the advice it gives)
shapes = [(768, 2304), (2304,), (768, 768), (768,), (768, 3072), (3072,), (3072, 768), (768,), (768,), (768,),
          (768,), (768,)] * 12
src = [np.full(s, 1.5, np.float32) for s in shapes]
bufs, fresh, held = [], [], 0
for s in shapes:
    n = int(np.prod(s)) * 4
    if held + n <= mapped:
        b = pages.populated(s, np.dtype(np.float32), touch=True)
        held += n
    else:
        b = np.empty(s, np.float32)
        fresh.append(b)
    bufs.append(b)

def advise_all(arrays, advice, part=(0, 1)):
    for a in arrays:
        address, length = pages._whole_pages(a)
        n = length // pages.mmap.PAGESIZE
        lo, hi = n * part[0] // part[1], n * (part[0] + 1) // part[1]
        if hi > lo:
            madvise(address + lo * pages.mmap.PAGESIZE, (hi - lo) * pages.mmap.PAGESIZE, advice)

def copy():
    for b, s in zip(bufs, src):
        np.copyto(b, s)

time.sleep(idle)
t = time.perf_counter()
advise_all(fresh, MADV_HUGEPAGE if variant == "huge" else pages.MADV_NOHUGEPAGE)
if variant in ("populate", "huge"):
    advise_all(fresh, pages.MADV_POPULATE_WRITE)
    copy()
elif variant in ("two", "fault1", "fault2"):
    n = 1 if variant == "fault1" else 2
    helpers = [threading.Thread(target=advise_all, args=(fresh, pages.MADV_POPULATE_WRITE, (k, n))) for k in range(n)]
    for h in helpers:
        h.start()
    for h in helpers:
        h.join()
    if variant == "two":
        copy()
elif variant == "helper":
    helper = threading.Thread(target=advise_all, args=(fresh[::-1], pages.MADV_POPULATE_WRITE))
    helper.start()
    copy()
    helper.join()
first = 1e3 * (time.perf_counter() - t)
t = time.perf_counter()
copy()
again = 1e3 * (time.perf_counter() - t)
assert all(np.array_equal(b, s) for b, s in zip(bufs, src))
print(json.dumps({"first": first, "again": again}))
"""

_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=6, help="fresh processes per variant")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds each waits before its first copy")
    ap.add_argument("--mapped", type=float, default=142.0, help="MB of the buffers mapped ahead")
    ap.add_argument("--variants", default="populate,helper,two,huge,fault1,fault2")
    args = ap.parse_args()
    variants = args.variants.split(",")
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for _ in range(args.samples):
        for v in variants:
            out = subprocess.run([sys.executable, "-c", _CHILD, v, str(args.idle), str(args.mapped)], env=_ENV,
                                 check=True, capture_output=True, text=True).stdout
            runs[v].append(json.loads(out))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.samples} fresh processes per variant, {args.idle:g} s idle")
    print("| variant | first copy ms, median (min) | copy again | first ÷ again |")
    print("|---|---|---|---|")
    for v, rs in runs.items():
        first, again = [r["first"] for r in rs], [r["again"] for r in rs]
        print(f"| {v} | {np.median(first):.0f} ({min(first):.0f}) | {np.median(again):.0f} ({min(again):.0f}) | "
              f"{np.median(first) / np.median(again):.2f}× |")


if __name__ == "__main__":
    main()
