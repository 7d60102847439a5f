"""The one place that spells Redis key names.

Every key of a queue shares the hash tag ``{<queue>}`` so that each Lua call touches one cluster slot; the
Lua library derives a queue's other keys from its meta key (see ``starq.lua``). Only the registry of queue
names lives outside any queue's slot, and no call ever touches it together with a queue's keys.
"""

REGISTRY = "starq:queues"
READY_CHANNEL = "starq:ready"


def meta(queue: str) -> str:
    return f"starq:{{{queue}}}:meta"
