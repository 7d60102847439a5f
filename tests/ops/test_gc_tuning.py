"""The serving process's garbage-collector settings (``server/gc_tuning.py``), checked in a fresh interpreter so
the test process's own collector is left alone."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from starq.server import gc_tuning
before = gc.get_threshold()
gc_tuning.tune_for_serving()

class Node:
    pass

# A reference cycle made after tuning must still be found: tuning spaces full collections out, it does not stop
# the collector.
a, b = Node(), Node()
a.other, b.other = b, a
del a, b
found = gc.collect()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(), "found": found}))
"""


def test_tuning_freezes_start_up_objects_and_spaces_full_collections_out():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["after"][:2] == result["before"][:2]  # the young generations keep CPython's thresholds
    assert result["after"][2] == 100 and result["before"][2] == 10
    assert result["frozen"] > 1000  # the imported modules at least
    assert result["found"] >= 2
