"""Identity resolution (Unify): identifiers, merge-protection rules, the identity graph, merged
traits, and the stores and HTTP/CLI shells around them.

The decision code (``identifiers``, ``rules``, ``graph``, ``traits``) is pure: it works on plain
values through the small :class:`~mainstem.identity.graph.GraphState` port. Only ``store`` (SQLite)
and ``consumer`` (the stage runner) do I/O.
"""
