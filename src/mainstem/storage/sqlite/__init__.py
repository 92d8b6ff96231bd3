"""The embedded SQLite backend: one file for the log (written by the gateway) and one for the
pipeline state (written by the processor), so the two writers never contend."""
