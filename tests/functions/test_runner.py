"""The worker pool with real child processes: every way a function can fail comes back as a
result, the worker is replaced when it must be, and the next call is served."""

from __future__ import annotations

import os
import resource
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mainstem.functions import protocol
from mainstem.functions.outcome import Result
from mainstem.functions.runner import Limits, Pool
from tests.conftest import wait_for
from tests.functions.conftest import MISBEHAVING, write

LIMITS = Limits(timeout=2.0, memory=160 * 1024 * 1024, concurrency=1)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    result = Pool(write(tmp_path, "crm.py", MISBEHAVING), LIMITS)
    yield result
    result.close()


def track(pool: Pool, name: str) -> Result:
    return pool.call("on_track", {"type": "track", "event": name, "userId": "u1"}, {})


def worker_pid(pool: Pool) -> int:
    result = pool.call("on_page", {"type": "page"}, {})
    assert result.error == "ValidationError", result
    return int(result.message.removeprefix("pid "))


def zombie(pid: int) -> bool:
    """Exited with all its threads (so its pipes are closed), not yet reaped by its parent."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    threads = os.listdir(f"/proc/{pid}/task")
    return stat.rsplit(")", 1)[1].split()[0] == "Z" and threads == [str(pid)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("Fine", Result()),
        ("Retry", Result("retry", "RetryError", "the CRM answered 503")),
        ("Invalid", Result("reject", "ValidationError", "email is missing")),
        ("Unsupported", Result("unsupported", "EventNotSupported", "this CRM takes no such event")),
        ("Bug", Result("exception", "KeyError", "'missing'")),
        ("Allocate", Result("error", "MemoryError", "out of memory")),
        ("Sleep", Result("timeout", "Timeout", "no answer within 2s (killed)")),
        ("Exit", Result("crash", "Crash", "the function's worker process died (exit code 3)")),
        (
            "Abort",
            Result("crash", "Crash", "the function's worker process died (killed by SIGABRT)"),
        ),
        (
            "Segfault",
            Result("crash", "Crash", "the function's worker process died (killed by SIGSEGV)"),
        ),
    ],
)
def test_each_behaviour_has_its_result_and_the_next_call_is_served(
    pool: Pool, event: str, expected: Result
) -> None:
    assert track(pool, event) == expected
    assert track(pool, "Fine") == Result()


def test_a_missing_handler_is_event_not_supported(pool: Pool) -> None:
    result = pool.call("on_group", {"type": "group", "groupId": "g1"}, {})
    assert result == Result(
        "unsupported", "EventNotSupported", "crm.py has no on_group for 'group' events"
    )


def test_settings_reach_the_handler(pool: Pool) -> None:
    event = {"type": "identify", "userId": "u9"}
    assert pool.call("on_identify", event, {}) == Result()
    assert pool.call("on_identify", event, {"reject_identify": True}) == Result(
        "reject", "ValidationError", "identify is off for u9"
    )


def test_a_worker_is_reused_until_it_overruns_then_killed_and_replaced(pool: Pool) -> None:
    first = worker_pid(pool)
    assert track(pool, "Retry").kind == "retry"
    assert worker_pid(pool) == first  # exceptions do not cost a process
    assert track(pool, "Sleep").kind == "timeout"
    assert not alive(first)
    second = worker_pid(pool)
    assert second != first
    assert track(pool, "Allocate").error == "MemoryError"
    assert worker_pid(pool) != second  # out of memory: started afresh


def test_the_memory_limit_applies_to_the_worker_only(pool: Pool) -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    assert track(pool, "Allocate").error == "MemoryError"
    assert resource.getrlimit(resource.RLIMIT_AS) == before


def test_a_file_that_cannot_load_is_a_load_error_until_it_is_fixed(tmp_path: Path) -> None:
    file = write(tmp_path, "broken.py", "def on_track(event, settings):\n    return (\n")
    pool = Pool(file, LIMITS)
    try:
        result = track(pool, "Fine")
        assert (result.kind, result.error) == ("load", "LoadError")
        assert result.message.startswith("broken.py: SyntaxError: ")
        write(tmp_path, "broken.py", MISBEHAVING)
        assert track(pool, "Fine") == Result()
    finally:
        pool.close()


def test_an_edited_file_is_picked_up_by_a_new_worker(tmp_path: Path) -> None:
    file = write(tmp_path, "crm.py", MISBEHAVING)
    pool = Pool(file, LIMITS)
    try:
        assert track(pool, "Fine") == Result()
        file.write_text(
            "from mainstem.functions import RetryError\n\n"
            "def on_track(event, settings):\n    raise RetryError('version 2')\n"
        )
        os.utime(file, (os.stat(file).st_atime, os.stat(file).st_mtime + 5))
        assert track(pool, "Fine") == Result("retry", "RetryError", "version 2")
    finally:
        pool.close()


def test_async_handlers_are_awaited(tmp_path: Path) -> None:
    code = (
        "from mainstem.functions import ValidationError\n\n"
        "async def on_track(event, settings):\n    raise ValidationError('from a coroutine')\n"
    )
    pool = Pool(write(tmp_path, "aio.py", code), LIMITS)
    try:
        assert track(pool, "Fine") == Result("reject", "ValidationError", "from a coroutine")
    finally:
        pool.close()


def test_a_closed_pool_answers_without_starting_workers(pool: Pool) -> None:
    assert track(pool, "Fine") == Result()
    pool.close()
    pool.close()
    assert track(pool, "Fine").error == "Closed"


BARRIER = """\
import os
import time
from pathlib import Path

from mainstem.functions import ValidationError


def on_track(event, settings):
    here = Path(settings["dir"])
    (here / f"arrived-{os.getpid()}").touch()
    while len(list(here.glob("arrived-*"))) < settings["expect"]:
        time.sleep(0.01)
    raise ValidationError(f"pid {os.getpid()}")
"""


def test_concurrency_runs_calls_at_once_in_separate_workers(tmp_path: Path) -> None:
    """Each call waits until ``expect`` calls have arrived: only parallel workers get through."""
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    pool = Pool(write(tmp_path, "barrier.py", BARRIER), Limits(timeout=60.0, concurrency=2))
    results: list[Result] = []

    def one() -> None:
        results.append(
            pool.call("on_track", {"type": "track"}, {"dir": str(rendezvous), "expect": 2})
        )

    try:
        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        pool.close()
    assert [result.error for result in results] == ["ValidationError"] * 2
    assert len({result.message for result in results}) == 2


def test_a_worker_that_died_while_idle_is_replaced_before_the_call(pool: Pool) -> None:
    first = worker_pid(pool)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: zombie(first), 30, "the killed worker to exit")
    assert track(pool, "Fine") == Result()  # not a crash: the call never reached the dead one
    assert worker_pid(pool) != first


def test_a_request_over_the_frame_limit_is_an_error_and_the_worker_stays(pool: Pool) -> None:
    first = worker_pid(pool)
    result = pool.call("on_track", {"type": "track", "blob": "x" * (protocol.MAX_FRAME + 1)}, {})
    assert (result.kind, result.error) == ("error", "TooLarge")
    assert worker_pid(pool) == first
