"""Identity resolution rate: stored events → the identity graph in profiles.db.

Fills a fresh event store with a realistic mix (anonymous pages, tracks from known users on
several devices, identifies with email and traits, a few group calls), then times

* ``resolve``: the pure graph over an in-memory state (the decision code alone), and
* ``resolver``: the identity stage end to end — read from the event store, decode, resolve,
  commit to SQLite with the position — as the server runs it.

Usage: .venv/bin/python bench/identity.py [--events 200000] [--users 20000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from mainstem.identity.graph import Event, MemoryState, resolve
from mainstem.identity.resolver import Resolver
from mainstem.identity.rules import Rules
from mainstem.identity.sqlite import SqliteProfileStore
from mainstem.storage import Batch, StoredEvent
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

RECEIVED = 1_714_557_600_000_000


def workload(events: int, users: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for n in range(events):
        user = rng.randrange(users)
        device = rng.randrange(3)
        ts = f"2024-05-01T{10 + n // 3_600_000 % 10:02d}:{n // 60_000 % 60:02d}:00.000Z"
        msg: dict[str, Any] = {
            "messageId": f"m{n}",
            "timestamp": ts,
            "anonymousId": f"anon-{user}-{device}",
        }
        roll = rng.random()
        if roll < 0.25:
            msg.update(type="page", name="Home")
        elif roll < 0.85:
            msg.update(type="track", event="Viewed", userId=f"user-{user}")
        elif roll < 0.97:
            msg.update(
                type="identify",
                userId=f"user-{user}",
                traits={"email": f"user{user}@example.com", "plan": rng.choice(["a", "b"])},
            )
        else:
            msg.update(type="group", userId=f"user-{user}", groupId=f"org-{user % 500}")
        out.append(msg)
    return out


def fill(store: SqlitePipelineStore, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10_000):
        batch = Batch(partition="bench", offset=start + 10_000)
        for msg in messages[start : start + 10_000]:
            batch.events.append(
                (
                    "web",
                    StoredEvent(
                        msg["messageId"],
                        msg["type"],
                        None,
                        msg.get("userId"),
                        msg["anonymousId"],
                        RECEIVED,
                        msgspec.json.encode(msg),
                    ),
                )
            )
        store.commit(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    args = parser.parse_args()
    messages = workload(args.events, args.users)

    events = [Event.from_message(m, "web") for m in messages]
    state, rules = MemoryState(), Rules()
    began = time.perf_counter()
    for event in events:
        resolve(state, rules, event)
    pure = time.perf_counter() - began
    print(
        f"resolve (pure, in memory): {args.events / pure:,.0f} events/s "
        f"({len(state.profiles):,} profiles)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = SqlitePipelineStore(root / "pipeline.db", fsync=False)
        fill(store, messages)
        for fsync in (False, True):
            path = root / f"profiles-{fsync}.db"
            profiles = SqliteProfileStore(path, fsync=fsync)
            resolver = Resolver(store, profiles)
            began = time.perf_counter()
            total = resolver.sync()
            took = time.perf_counter() - began
            print(
                f"resolver (event store → profiles.db, fsync={str(fsync).lower()}): "
                f"{total / took:,.0f} events/s ({profiles.count()})"
            )
            profiles.close()
        store.close()


if __name__ == "__main__":
    main()
