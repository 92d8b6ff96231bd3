"""Tracking plans (Protocols, reference §1): one model, two file formats, validation and the
per-source enforcement decision. Every module here is pure: no sockets, no SQL."""
