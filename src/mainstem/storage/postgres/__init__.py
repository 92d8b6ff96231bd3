"""The PostgreSQL backend, for many gateways and workers on many machines (DESIGN §3).

Mirrors ``storage/sqlite`` file for file: ``connection.py`` (connections, named migrations under
an advisory lock), ``eventlog.py`` (the log: time-partitioned, one appender per log partition,
COPY), ``pipeline.py`` (the processor's outputs, fenced by worker leases); plus ``leases.py``,
how workers divide the log partitions. docs/scaling.md explains the design.
"""
