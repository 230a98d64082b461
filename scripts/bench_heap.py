"""Benchmark target for `scripts/bench`: build a heap of about N Python objects, then serve census requests.

usage: python3 scripts/bench_heap.py N

Builds the heap, runs gc.collect() (which untracks atomic-only tuples and dicts, as in any long-running process),
then prints one JSON line to stdout:

    {"ready": true, "pid": ..., "python": "3.11.7", "n": N, "built": ..., "per_unit": 8, "gc_tracked": ...,
     "rss": ..., "build_s": ..., "tracemalloc": null}

("tracemalloc" is null unless the interpreter was started tracing, `-X tracemalloc=N` or PYTHONTRACEMALLOC=N;
then it is {"frames": N, "memory": tracemalloc.get_tracemalloc_memory(), "traced": traced bytes now,
"peak": peak traced bytes}: what tracemalloc reports for its own tables (their entries and buckets, not the
trace_t each entry points to nor malloc overhead), and what it traces.)

and then reads commands from stdin, one per line, answering each with one JSON line:

    census [REPS]   time `collections.Counter(type(o).__name__ for o in gc.get_objects())` REPS times (default 3)
                    with time.perf_counter(); answers {"census_s": median, "runs": [...], "gc_objects": ...}
    rss             answers {"rss": VmRSS bytes, "gc_tracked": len(gc.get_objects()), "tracemalloc": as above}

It exits on EOF (so a killed driver never leaves it behind). Works on CPython 3.8 and later.

The heap is made of units; a unit is what a typical record-keeping service holds per row:

    item  = Item(id, name, pair, price)   an instance of a plain class with 4 attributes
    id    = a unique int (> 2**20, so never a cached small int)
    name  = a unique str
    pair  = (id, name)                    a tuple
    price = a unique float
    meta  = {"sku": sku, "qty": 3}        a small dict
    sku   = a second unique str
    row   = [item, meta]                  a list, kept in one big list (HEAP)

That is 8 objects per unit on 3.11+ (instances keep their attributes in a managed values array, no dict object)
and 9 on 3.8-3.10 (each instance also has its own __dict__). Of these only the instance, the row list (and the
__dict__ before 3.11) stay on the garbage collector's lists: `gc.get_objects()` sees 25 % (33 % on 3.8-3.10) of
what a walker of the whole heap sees. `built` counts the objects created here; the interpreter itself adds some
tens of thousands more (modules, functions, code objects, interned strings).
"""
import collections
import gc
import json
import os
import statistics
import sys
import time

HEAP = []


class Item:
    def __init__(self, id, name, pair, price):
        self.id = id
        self.name = name
        self.pair = pair
        self.price = price


def per_unit():
    return 8 if sys.version_info >= (3, 11) else 9


def build(n):
    """Append n // per_unit() units to HEAP; return the number of objects created."""
    units = n // per_unit()
    append = HEAP.append
    base = 1 << 20
    for i in range(units):
        ident = base + i
        name = "item-%d" % i
        pair = (ident, name)
        item = Item(ident, name, pair, i + 0.5)
        append([item, {"sku": "sku-%08d" % i, "qty": 3}])
    return units * per_unit() + 1  # + HEAP itself


def rss():
    """VmRSS in bytes, or None without /proc (e.g. in a bare chroot)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def tracemalloc_info():
    """tracemalloc's own numbers when the interpreter was started tracing, else None. Uses the built-in
    _tracemalloc module, and only when tracing was asked for, so that an untraced heap stays exactly as it was
    (importing the `tracemalloc` package would add modules and objects of its own)."""
    if "tracemalloc" not in sys._xoptions and not os.environ.get("PYTHONTRACEMALLOC"):
        return None
    import _tracemalloc
    if not _tracemalloc.is_tracing():
        return None
    traced, peak = _tracemalloc.get_traced_memory()
    return {"frames": _tracemalloc.get_traceback_limit(), "memory": _tracemalloc.get_tracemalloc_memory(),
            "traced": traced, "peak": peak}


def census():
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def timed_census(reps):
    runs = []
    size = 0
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        c = census()
        runs.append(time.perf_counter() - t)
        size = sum(c.values())
        del c
    return {"census_s": statistics.median(runs), "runs": runs, "gc_objects": size}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_heap.py N")
    n = int(float(sys.argv[1]))
    gc.disable()  # no collections while building: faster, and the heap ends up the same after gc.collect()
    t = time.perf_counter()
    built = build(n)
    build_s = time.perf_counter() - t
    gc.enable()
    gc.collect()
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        "n": n,
        "built": built,
        "per_unit": per_unit(),
        "gc_tracked": len(gc.get_objects()),
        "rss": rss(),
        "build_s": round(build_s, 3),
        "tracemalloc": tracemalloc_info(),
    }
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "census":
            answer = timed_census(int(words[1]) if len(words) > 1 else 3)
        elif words[0] == "rss":
            answer = {"rss": rss(), "gc_tracked": len(gc.get_objects()), "tracemalloc": tracemalloc_info()}
        else:
            answer = {"error": "unknown command %r" % words[0]}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
