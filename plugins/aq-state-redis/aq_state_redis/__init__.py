"""aq's shared store: state documents and lineage streams in Redis.

Importing this package does not import ``redis``; the store classes are built by the factories in
:mod:`aq_state_redis.plugin` (URL ``redis://host:6379/0?connect_timeout=0.2&timeout=0.5``).
"""

__version__ = "0.1.0"
