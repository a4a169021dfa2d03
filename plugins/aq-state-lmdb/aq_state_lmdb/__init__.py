"""aq's embedded store: state documents and lineage chains in one LMDB environment.

Importing this package does not import ``lmdb``; the store classes are built by the factories in
:mod:`aq_state_lmdb.plugin` (URL ``lmdb:///absolute/directory``).
"""

__version__ = "0.1.0"
