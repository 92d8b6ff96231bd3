"""The processor process's signal handling."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

# A second SIGTERM (the parent's terminate() and then its death signal) may land while the
# main thread is inside stop.set(), holding the event's lock: the handler runs right there.
REENTERED = textwrap.dedent(
    """
    import signal, threading
    from mainstem import worker

    stop = threading.Event()
    worker._stop_on_sigterm(stop)
    handler = signal.getsignal(signal.SIGTERM)
    with stop._cond:  # as inside stop.set()
        handler(signal.SIGTERM, None)
    assert stop.wait(5), "SIGTERM did not set stop"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    print("stopped")
    """
)


def test_a_sigterm_that_lands_inside_stop_set_neither_deadlocks_nor_is_lost() -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", REENTERED], cwd=ROOT, capture_output=True, timeout=20
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the SIGTERM handler deadlocked on the stop event's lock") from exc
    assert (done.returncode, done.stdout, done.stderr) == (0, b"stopped\n", b"")
