#!/usr/bin/env python3
"""Turn a DWARF layout dump (scripts/layouts/dump_layout.sh) into a pymemspy layout table.

usage: to_table.py DUMP.json BUILD MIN_VERSION MAX_VERSION_EXCLUSIVE "SOURCE NOTE" > src/layout/tables/vX_Y_Z.json

Adds the `_meta` header and the few labels pymemspy derives rather than dumps (code.co_stacksize; the 3.9/3.10
small-int pointer array). Then add the file to TABLES in src/layout/mod.rs and run the tests.
"""
import json
import sys

dump, build, lo, hi, note = sys.argv[1:6]
d = json.load(open(dump))
out = {"_meta": {"build": build, "min_version": lo, "max_version_exclusive": hi, "source": note}}
out.update(d)
fl = d.get("code.co_firstlineno")
if fl is not None:
    out["code.co_stacksize"] = fl - 4 if d.get("code.co_nlocalsplus") is not None else d["code.co_nlocals"] + 4
minor = int(build.split(".")[1])
if minor in (9, 10):
    out["interp.small_ints"] = {9: 3552, 10: 3512}[minor]
json.dump(out, sys.stdout, indent=0)
