"""How the serving process runs Python's cyclic garbage collector.

CPython (3.11) considers a full collection, which walks every tracked object in the process, after every
10 collections of the middle generation (about 70,000 surviving allocations), and runs it when the objects
that survived since the last one add a quarter to what that one found. A server that parks thousands of
long-polls grows by about 110 tracked objects per parked claim (coroutine frames, tasks, cancel scopes,
sockets), so parking 10,000 of them ran about ten full collections over a heap growing to 1.2 million objects:
half the server's CPU while parking, and pauses of up to 1.3 s in which no connection was accepted (the listen
backlog overflowed and clients waited for SYN retries). Figures: ``benchmarks/README.md``.

Two changes, applied once when serving starts:

* ``gc.freeze()`` after start-up: modules, routes, the app and its clients live as long as the process, so
  no collection needs to walk them again (about 96,000 objects).
* Full collections are considered after 100 middle-generation collections instead of 10 (the young
  thresholds stay as they are). Short-lived cycles (a request's exception and frames) are still found by
  the young collections, which is where almost all of a request's garbage dies; only cycles that outlive two
  young collections wait longer. The quarter-growth rule still applies, so the heap cannot grow far without a
  full collection: parking 10,000 claims now runs one instead of about ten.
"""

from __future__ import annotations

import gc

# Middle-generation (generation 1) collections between two chances of a full collection; CPython's default: 10.
FULL_COLLECTION_EVERY = 100


def tune_for_serving() -> None:
    """Freezes what start-up allocated and spaces full collections out (see the module docstring). Call it
    once, after the app is built and before the first request."""
    gc.collect()  # what start-up left as garbage goes now, not into the permanent generation
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
