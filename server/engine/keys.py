"""The one place that spells Redis key names.

Every key of a queue shares the hash tag ``{<queue>}`` so that each Lua call touches one cluster slot; the
Lua library derives a queue's other keys from its meta key (see ``starq.lua``). Only the registry of queue
names lives outside any queue's slot, and no call ever touches it together with a queue's keys.
"""

REGISTRY = "starq:queues"
# Pub/sub channels the Lua library publishes on (library.py writes them into it): a queue got claimable jobs
# (message: the queue's name); a watched job finished ("<queue> <job id>"); a queue's event log grew (its name).
CHANNELS = {"ready": "starq:ready", "done": "starq:done", "events": "starq:events"}


def meta(queue: str) -> str:
    return f"starq:{{{queue}}}:meta"
