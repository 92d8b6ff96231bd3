"""Ingest benchmark: durable events/s of ``mainstem serve``, next to ceilings measured in the run.

    .venv/bin/python bench/ingest.py                 # what `make bench` runs (~2 minutes)
    .venv/bin/python bench/ingest.py --duration 20 --single-connections 32
    .venv/bin/python bench/ingest.py --profile /tmp/prof   # adds py-spy runs (needs py-spy)

Every scenario gets its own fresh server process (and, for Mainstem, a fresh data directory), a
warm-up, then one measured ``wrk -t1`` run from a separate process:

* ``batch``: ``POST /v1/batch`` with 100-event bodies, write key as Basic auth;
* ``single``: ``POST /v1/track`` with one event and ``writeKey`` in the body.

Messages are ~700-byte analytics.js-like events (track/page/identify). ``bench/wrk/rotate.lua``
rotates through pre-generated bodies and gives every request fresh messageIds, so the processor
(which dedupes; the gateway does not) does the work real traffic would cause.

The targets are ``mainstem serve`` (gateway + event log with group commit + processor child
process, ``fsync`` on) and two ceilings on the same HTTP stack (``bench/ceiling.py``): ``bare``
reads the body and answers 200, ``decode`` also decodes every message with msgspec. Mainstem's
figures are printed as ratios of those ceilings, and cross-checked against its ``/metrics``.
Results go to stdout and to the "Ingest" section of ``docs/benchmarks.md``.

Everything binds and connects to 127.0.0.1 only; servers and temporary files are removed at the
end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import msgspec

from report import write_section  # type: ignore[import-not-found]

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "wrk" / "rotate.lua"
CEILING = BENCH / "ceiling.py"
DOCS = ROOT / "docs" / "benchmarks.md"

SETTLE = 0.5  # seconds between a wrk run and the next metrics scrape
BUSY_MACHINE = 0.15  # other processes using more than this share of a core: warn

BATCH_TARGET_EVENTS = 100_000
BATCH_TARGET_DECODE_RATIO = 0.4
SINGLE_TARGET_BARE_RATIO = 0.5

ID_MARKER = "@" * 12  # the last 12 hex digits of every messageId; see bench/wrk/rotate.lua

_encode = msgspec.json.Encoder().encode
_runs = itertools.count(1)  # each wrk run numbers its requests from a fresh 2**36 block


# --------------------------------------------------------------------------------------------
# Traffic: realistic Segment messages (analytics.js-like context, nested properties)
# --------------------------------------------------------------------------------------------

_PAGES = (
    ("/", "Acme Outdoor"),
    ("/collections/tents", "Tents | Acme Outdoor"),
    ("/products/alpine-2p-tent", "Alpine 2P Tent | Acme Outdoor"),
    ("/products/trailrunner-gtx", "TrailRunner GTX Shoes | Acme Outdoor"),
    ("/cart", "Your cart | Acme Outdoor"),
    ("/checkout/shipping", "Shipping | Acme Outdoor"),
    ("/blog/sleeping-bags", "Picking a sleeping bag | Acme Journal"),
)
_REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://t.co/x8Yz1Lq",
    "https://news.acme.example/42",
    "",
)
_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_PRODUCTS = (
    ("prd_7Hq2", "Alpine 2P Ultralight Tent", "Tents", 349.0),
    ("prd_K3x9", "TrailRunner GTX", "Footwear", 159.95),
    ("prd_Q1m4", "Down Sleeping Bag -7°C", "Sleeping bags", 289.5),
    ("prd_Z8r6", "Titanium Spork", "Kitchen", 12.99),
)
_EVENTS = (
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Promotion Clicked",
)
_PLANS = ("free", "plus", "pro")
_CITIES = (("Berlin", "DE"), ("Lyon", "FR"), ("Denver", "US"), ("Osaka", "JP"))


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_event(rng: random.Random, kind: str, now: dt.datetime) -> dict[str, Any]:
    """One message as analytics.js would send it (~600-800 bytes of compact JSON)."""
    path, title = rng.choice(_PAGES)
    referrer = rng.choice(_REFERRERS)
    search = "?utm_source=newsletter" if rng.random() < 0.3 else ""
    context: dict[str, Any] = {
        "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
        "page": {
            "path": path,
            "referrer": referrer,
            "search": search,
            "title": title,
            "url": f"https://acme.example{path}{search}",
        },
        "userAgent": rng.choice(_USER_AGENTS),
    }
    moment = now - dt.timedelta(milliseconds=rng.randrange(0, 60_000))
    message: dict[str, Any] = {
        "type": kind,
        "messageId": _uuid4(rng)[:24] + ID_MARKER,  # rotate.lua fills in a request counter
        "anonymousId": _uuid4(rng),
        "timestamp": _iso(moment),
        "context": context,
    }
    if rng.random() < 0.7:
        message["userId"] = f"usr_{rng.randrange(10**8):08d}"
    if kind == "track":
        product_id, name, category, price = rng.choice(_PRODUCTS)
        quantity = rng.randrange(1, 4)
        message["event"] = rng.choice(_EVENTS)
        message["properties"] = {
            "product": {"id": product_id, "name": name, "category": category, "price": price},
            "quantity": quantity,
            "cart": {"value": round(price * quantity, 2), "currency": "USD"},
        }
    elif kind == "identify":
        city, country = rng.choice(_CITIES)
        message["traits"] = {
            "email": f"hiker{rng.randrange(10**6)}@example.com",
            "name": rng.choice(("Ada Lovelace", "Grace Hopper", "Katherine Johnson")),
            "plan": rng.choice(_PLANS),
            "address": {"city": city, "country": country},
            "createdAt": _iso(moment - dt.timedelta(days=rng.randrange(1, 900))),
        }
    else:
        message["name"] = title.split(" | ")[0]
        message["properties"] = {"path": path, "title": title, "referrer": referrer}
    return message


def batch_body(rng: random.Random, size: int, now: dt.datetime) -> bytes:
    kinds = rng.choices(("track", "identify", "page"), weights=(70, 10, 20), k=size)
    return _encode({"batch": [make_event(rng, kind, now) for kind in kinds], "sentAt": _iso(now)})


def single_body(rng: random.Random, write_key: str, now: dt.datetime) -> bytes:
    message = make_event(rng, "track", now)
    message["writeKey"] = write_key
    return _encode(message)


@dataclass(frozen=True)
class Traffic:
    kind: str  # "batch" | "single"
    path: str
    directory: Path
    count: int
    events_per_request: int
    mean_body_bytes: int
    mean_event_bytes: int
    authorization: str = ""


def write_traffic(
    directory: Path, kind: str, write_key: str, *, bodies: int, batch_size: int, seed: int
) -> Traffic:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True)
    sizes: list[int] = []
    for index in range(bodies):
        if kind == "batch":
            body = batch_body(rng, batch_size, now)
        else:
            body = single_body(rng, write_key, now)
        (directory / f"body-{index:04d}.json").write_bytes(body)
        sizes.append(len(body))
    mean = sum(sizes) // len(sizes)
    if kind == "batch":
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        return Traffic(
            kind,
            "/v1/batch",
            directory,
            bodies,
            batch_size,
            mean,
            mean // batch_size,
            f"Basic {token}",
        )
    return Traffic(kind, "/v1/track", directory, bodies, 1, mean, mean)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# No proxies from the environment: the benchmark only ever talks to 127.0.0.1.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    url = f"http://{HOST}:{port}{path}"
    try:
        with _direct.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class Server:
    """A server process in its own session; :meth:`stop` ends it and anything it spawned."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, ready_timeout: float = 60.0) -> None:
        self._log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before "
                    f"it was ready:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                status, body = http_get(self.port, "/health", timeout=1.0)
                if status == 200 and b'"unavailable"' not in body:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} was not ready after {ready_timeout:.0f}s:\n{self.log_tail()}"
        )

    def children(self) -> dict[int, str]:
        """Direct child processes: pid -> command line."""
        found: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.pid:
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(entry.name)] = cmdline.decode(errors="replace").strip()
            except (OSError, ValueError, IndexError):
                continue
        return found

    def processor_pid(self) -> int | None:
        for pid, cmdline in self.children().items():
            if "spawn_main" in cmdline:
                return pid
        return None

    def log_tail(self, lines: int = 30) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop in {timeout:.0f}s; killing it", flush=True)
        # The session's process group: the server if still there, and its children.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.process = None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` (all its threads), 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (``/proc/stat``), in seconds."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as name -> value summed over labels."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    totals: dict[str, float] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_seconds: float
    output: str

    @property
    def ok_requests(self) -> int:
        return max(0, self.requests - self.non2xx)


_WRK_JSON = re.compile(r"^WRK_JSON (\{.*\})$", re.MULTILINE)


def run_wrk(port: int, traffic: Traffic, connections: int, seconds: float) -> WrkResult:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://{HOST}:{port}",
        "--",
        str(traffic.directory),
        str(traffic.count),
        traffic.path,
        str(next(_runs) << 36),
        traffic.authorization,
    ]
    cpu_before = children_cpu_seconds()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu = children_cpu_seconds() - cpu_before
    match = _WRK_JSON.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(match.group(1))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        non2xx=int(data["non2xx"]),
        socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        cpu_seconds=cpu,
        output=_WRK_JSON.sub("", done.stdout).rstrip(),
    )


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

TARGETS = {"mainstem": "mainstem serve", "decode": "decode ceiling", "bare": "bare ceiling"}


@dataclass
class Result:
    target: str  # "mainstem" | "decode" | "bare"
    kind: str  # "batch" | "single"
    connections: int
    wrk: WrkResult
    events_per_request: int
    server_cpu: float  # fraction of one core
    processor_cpu: float | None = None
    wrk_cpu: float = 0.0
    other_cpu: float = 0.0  # everything else on the machine (other processes, kernel threads)
    counters: dict[str, float] = field(default_factory=dict)  # deltas over the measured run
    lag_after: float | None = None

    @property
    def label(self) -> str:
        return f"{self.kind:<6} {TARGETS[self.target]}"

    @property
    def requests_per_second(self) -> float:
        return self.wrk.ok_requests / self.wrk.seconds

    @property
    def events_per_second(self) -> float:
        return self.wrk.ok_requests * self.events_per_request / self.wrk.seconds

    @property
    def cpu_per_request_us(self) -> float:
        """Server process CPU per answered request, in µs."""
        requests = self.wrk.requests
        return 1e6 * self.server_cpu * self.wrk.seconds / requests if requests else 0.0

    def per_second(self, counter: str) -> float:
        return self.counters.get(counter, 0.0) / self.wrk.seconds


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    connections: dict[str, int]
    profile: Path | None
    profile_duration: float
    verbose: bool
    wait_idle: float = 0.0


def wait_for_idle(limit: float) -> float:
    """Wait (at most ``limit`` seconds) until other processes use < BUSY_MACHINE of a core over
    one second; returns the last busy share seen."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - before
        if busy < BUSY_MACHINE or time.monotonic() >= deadline:
            return busy


def measure(target: str, traffic: Traffic, options: Options, work: Path, write_key: str) -> Result:
    port = free_port()
    kind = traffic.kind
    if target == "mainstem":
        workspace = work / f"workspace-{kind}.yaml"
        workspace.write_text(
            "admin_token: bench-admin-token\n"
            "sources:\n"
            "  - id: bench\n"
            "    name: Benchmark\n"
            f"    write_key: {write_key}\n"
            "destinations: []\n",
            encoding="utf-8",
        )
        mainstem = Path(sys.executable).parent / "mainstem"
        argv = [
            str(mainstem) if mainstem.exists() else "mainstem",
            "serve",
            "--config",
            str(workspace),
            "--data-dir",
            str(work / f"data-{kind}"),
            "--port",
            str(port),
            "--host",
            HOST,
            "--log-level",
            "warning",
        ]
    else:
        argv = [sys.executable, str(CEILING), "--mode", target, "--port", str(port)]
    connections = options.connections[kind]
    server = Server(TARGETS[target], argv, port, work / f"{target}-{kind}.log")
    if options.wait_idle > 0:
        busy = wait_for_idle(options.wait_idle)
        if busy >= BUSY_MACHINE:
            print(f"  (the machine is still busy: {100 * busy:.0f}% of a core)", flush=True)
    print(f"- {kind:<6} {TARGETS[target]:<15} c={connections:<3} ", end="", flush=True)
    try:
        server.start()
        processor = server.processor_pid() if target == "mainstem" else None
        if options.warmup > 0:
            run_wrk(port, traffic, connections, options.warmup)
            time.sleep(SETTLE)  # requests in flight when wrk stopped finish outside the window
        before = scrape(port) if target == "mainstem" else {}
        cpu_server, cpu_processor = cpu_seconds(server.pid), cpu_seconds(processor)
        cpu_machine = machine_busy_seconds()
        started = time.monotonic()
        result = run_wrk(port, traffic, connections, options.duration)
        elapsed = time.monotonic() - started
        cpu_server = (cpu_seconds(server.pid) - cpu_server) / elapsed
        cpu_processor = (cpu_seconds(processor) - cpu_processor) / elapsed
        cpu_machine = (machine_busy_seconds() - cpu_machine) / elapsed
        cpu_other = cpu_machine - cpu_server - cpu_processor - result.cpu_seconds / elapsed
        time.sleep(SETTLE)
        measured = Result(
            target,
            kind,
            connections,
            result,
            traffic.events_per_request,
            server_cpu=cpu_server,
            wrk_cpu=result.cpu_seconds / elapsed,
            other_cpu=max(0.0, cpu_other),
        )
        if target == "mainstem":
            after = scrape(port)
            measured.processor_cpu = cpu_processor if processor is not None else None
            measured.counters = {name: after[name] - before.get(name, 0.0) for name in after}
            measured.lag_after = after.get("mainstem_log_lag")
        print(
            f"{measured.events_per_second:>10,.0f} events/s  p50 {result.p50_ms:6.2f} ms  "
            f"p99 {result.p99_ms:6.2f} ms  non-2xx {result.non2xx}",
            flush=True,
        )
        if options.verbose:
            print(result.output)
        if target == "mainstem" and options.profile is not None:
            profile_run(server, processor, traffic, connections, options)
        return measured
    except Exception:
        print(f"\n  {server.name} log:\n{server.log_tail()}", flush=True)
        raise
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Profiling (optional: --profile DIR, needs py-spy)
# --------------------------------------------------------------------------------------------


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_run(
    server: Server, processor: int | None, traffic: Traffic, connections: int, options: Options
) -> None:
    """One more load run of the same scenario, with py-spy sampling the gateway and the
    processor (its numbers are not reported: sampling costs CPU on a 2-core machine)."""
    assert options.profile is not None
    spy = py_spy()
    if spy is None:
        raise RuntimeError("--profile needs py-spy (.venv/bin/pip install py-spy)")
    options.profile.mkdir(parents=True, exist_ok=True)
    seconds = max(1, round(options.profile_duration))
    targets = {"gateway": server.pid}
    if processor is not None:
        targets["processor"] = processor
    spies: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for role, pid in targets.items():
        out = options.profile / f"{traffic.kind}-{role}.txt"
        spies[role] = (
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--nolineno",
                    "--threads",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            out,
        )
    try:
        time.sleep(0.5)
        run_wrk(server.port, traffic, connections, seconds)
    finally:
        for process, _ in spies.values():
            try:
                process.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for role, (_, out) in spies.items():
        if out.exists():
            print(summarise_profile(out, f"{traffic.kind} load, {role} (pid {targets[role]})"))


# Leaf frames of threads that wait rather than work (py-spy does not always see them as idle).
_WAITING = ("Condition.wait (", "Event.wait (", "Queue.get (", "SimpleQueue.get (")


def summarise_profile(path: Path, title: str, top: int = 15) -> str:
    """Where a py-spy raw profile (``--threads``) spends its samples: the share of each thread,
    then the top functions by self and inclusive share. Samples of threads waiting on a lock or
    queue are left out. Time in C code (msgspec, SQLite, socket writes) counts for the Python
    function that called it: ``transaction`` is SQLite's COMMIT (WAL write, fsync, checkpoint)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = waiting = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread (") else "?"
        frames = [frame for frame in frames[1:] if " (" in frame]
        if not frames:
            continue
        if frames[-1].startswith(_WAITING):
            waiting += count
            continue
        total += count
        threads[thread] += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = 100 / max(total, 1)
    lines = [
        f"\nprofile: {title} — {total} busy samples ({waiting} waiting left out), {path}",
        "  threads: " + ", ".join(f"{name} {share * n:.0f}%" for name, n in threads.most_common()),
        "  self%  incl%  function",
    ]
    for name, count in own.most_common(top):
        lines.append(f"  {share * count:5.1f}  {share * inclusive[name]:5.1f}  {name}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "—"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def results_table(results: Sequence[Result]) -> list[str]:
    ceilings = {(r.target, r.kind): r.events_per_second for r in results if r.target != "mainstem"}
    rows = [
        "| scenario | conns | requests/s | events/s | p50 | p99 | non-2xx | ÷ bare | ÷ decode |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        errors = f"{r.wrk.non2xx}" + (
            f" (+{r.wrk.socket_errors} socket)" if r.wrk.socket_errors else ""
        )
        rows.append(
            f"| {r.kind} · {TARGETS[r.target]} | {r.connections} | "
            f"{r.requests_per_second:,.0f} | {r.events_per_second:,.0f} | "
            f"{r.wrk.p50_ms:.2f} ms | {r.wrk.p99_ms:.2f} ms | {errors} | "
            f"{_ratio(r.events_per_second, ceilings.get(('bare', r.kind)))} | "
            f"{_ratio(r.events_per_second, ceilings.get(('decode', r.kind)))} |"
        )
    return rows


def server_table(results: Sequence[Result]) -> list[str]:
    rows = [
        "| scenario | events/s (wrk saw 200) | events/s (server counted) | commits/s · "
        "requests/commit · mean commit | processor stored events/s · log lag after | "
        "CPU: server · processor · wrk · other | server CPU per request |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        processor = f"{100 * r.processor_cpu:.0f}%" if r.processor_cpu is not None else "—"
        cpu = (
            f"{100 * r.server_cpu:.0f}% · {processor} · {100 * r.wrk_cpu:.0f}% · "
            f"{100 * r.other_cpu:.0f}%"
        )
        if r.target != "mainstem":
            rows.append(
                f"| {r.kind} · {TARGETS[r.target]} | {r.events_per_second:,.0f} | — | — "
                f"| — | {cpu} | {r.cpu_per_request_us:,.0f} µs |"
            )
            continue
        per_commit, mean_commit = _commit_stats(r)
        rows.append(
            f"| {r.kind} · {TARGETS[r.target]} | {r.events_per_second:,.0f} | "
            f"{r.per_second('mainstem_ingest_events_accepted_total'):,.0f} | "
            f"{r.per_second('mainstem_log_commits_total'):,.0f} · {per_commit:.1f} · "
            f"{mean_commit:.2f} ms | "
            f"{r.per_second('mainstem_processor_events_stored_total'):,.0f} · "
            f"{r.lag_after or 0:,.0f} requests | {cpu} | {r.cpu_per_request_us:,.0f} µs |"
        )
    return rows


def target_lines(results: Sequence[Result]) -> list[str]:
    by = {(r.target, r.kind): r for r in results}
    lines: list[str] = []
    batch, single = by.get(("mainstem", "batch")), by.get(("mainstem", "single"))
    decode_batch, bare_single = by.get(("decode", "batch")), by.get(("bare", "single"))
    if batch is not None:
        eps = batch.events_per_second
        lines.append(
            f"- batches ≥ {BATCH_TARGET_EVENTS:,} durable events/s: "
            f"{eps:,.0f} — {_verdict(eps >= BATCH_TARGET_EVENTS)}"
        )
        if decode_batch is not None:
            ratio = eps / decode_batch.events_per_second
            lines.append(
                f"- batches ≥ {BATCH_TARGET_DECODE_RATIO} of the decode ceiling: "
                f"{ratio:.2f} — {_verdict(ratio >= BATCH_TARGET_DECODE_RATIO)}"
            )
    if single is not None and bare_single is not None:
        ratio = single.events_per_second / bare_single.events_per_second
        lines.append(
            f"- single events ≥ {SINGLE_TARGET_BARE_RATIO} of the bare single-event "
            f"ceiling: {ratio:.2f} — {_verdict(ratio >= SINGLE_TARGET_BARE_RATIO)}"
        )
    for r in results:
        if r.wrk.non2xx or r.wrk.socket_errors:
            lines.append(
                f"- WARNING: {r.label}: {r.wrk.non2xx} non-2xx responses, "
                f"{r.wrk.socket_errors} socket errors"
            )
    for r in results:
        if r.other_cpu > BUSY_MACHINE:
            lines.append(
                f"- WARNING: {r.label}: other processes used {100 * r.other_cpu:.0f}% of a core "
                "during the measurement — the machine was not idle"
            )
    for r in results:
        duplicates = r.counters.get("mainstem_processor_events_duplicate_total", 0.0)
        rejected = r.counters.get("mainstem_processor_events_rejected_total", 0.0)
        if duplicates or rejected:
            lines.append(
                f"- WARNING: {r.label}: the processor dropped {duplicates:,.0f} duplicates and "
                f"rejected {rejected:,.0f} messages — the generated traffic should have neither"
            )
    for r in results:
        accepted = r.counters.get("mainstem_ingest_events_accepted_total")
        if accepted is None:
            continue
        seen = r.wrk.ok_requests * r.events_per_request
        # The server also counts the requests that were in flight when wrk stopped.
        if not seen <= accepted <= seen + r.connections * r.events_per_request:
            lines.append(
                f"- WARNING: {r.label}: the server accepted {accepted:,.0f} events, "
                f"wrk saw {seen:,} answered 200"
            )
    return lines


def _commit_stats(r: Result) -> tuple[float, float]:
    """(requests per commit, mean commit in ms) over the measured run."""
    groups = r.counters.get("mainstem_log_commits_total", 0.0)
    if not groups:
        return 0.0, 0.0
    committed = r.counters.get("mainstem_log_committed_requests_total", 0.0)
    seconds = r.counters.get("mainstem_log_commit_seconds_sum", 0.0)
    return committed / groups, 1000 * seconds / groups


def _machine_cpu(r: Result) -> float:
    return r.server_cpu + (r.processor_cpu or 0.0) + r.wrk_cpu + r.other_cpu


def limits_paragraph(results: Sequence[Result], traffic: dict[str, Traffic]) -> list[str]:
    by = {(r.target, r.kind): r for r in results}
    lines = [
        "**What limits it.** Two cores are shared by wrk, the gateway (one uvicorn worker: one "
        "event loop and one GIL, plus the log-writer thread that runs the SQLite commits) and "
        "the processor child, which works through the log while events arrive. The ceilings "
        "have no processor, so their server gets a core to itself. Server CPU per request "
        "counts the whole gateway process (event loop and log writer).",
        "",
    ]
    batch = by.get(("mainstem", "batch"))
    if batch is not None:
        per_commit, commit_ms = _commit_stats(batch)
        group_mb = per_commit * traffic["batch"].mean_body_bytes / 1e6
        machine = _machine_cpu(batch)
        if machine >= 1.8:
            bound = (
                f"the two cores were saturated ({100 * machine:.0f}% of 200% in use: gateway "
                f"{100 * batch.server_cpu:.0f}%, processor {100 * (batch.processor_cpu or 0):.0f}%"
                f", wrk {100 * batch.wrk_cpu:.0f}%, other processes {100 * batch.other_cpu:.0f}%)"
                ", so the gateway could not get more CPU"
            )
        elif batch.server_cpu < 0.8:
            bound = (
                "the gateway had CPU to spare: the commits set the pace (each request waits "
                "for the commit in progress, then its own; requests/s ≈ connections ÷ latency)"
            )
        else:
            bound = "the gateway process was CPU-bound"
        stored = batch.per_second("mainstem_processor_events_stored_total")
        lines.append(
            f"- *Batches:* the gateway used {100 * batch.server_cpu:.0f}% of a core, "
            f"{batch.cpu_per_request_us:,.0f} µs of CPU per request; the log writer committed "
            f"{per_commit:.1f} requests (~{group_mb:.1f} MB) per transaction in "
            f"{commit_ms:.1f} ms on average; {bound}. Committing large rows costs SQLite's WAL "
            "write, the fsync and, every ~4 MB, an automatic checkpoint that copies the pages "
            "into the database file inside a commit. Meanwhile the processor stored "
            f"{stored:,.0f} events/s with {100 * (batch.processor_cpu or 0):.0f}% of a core: "
            "ingest runs ahead of processing and the log absorbs the difference "
            f"({batch.lag_after or 0:,.0f} requests behind at the end)."
        )
    single = by.get(("mainstem", "single"))
    if single is not None:
        bare = by.get(("bare", "single"))
        versus = f" against {bare.cpu_per_request_us:,.0f} µs for the bare ceiling" if bare else ""
        processor = (
            f"{100 * single.processor_cpu:.0f}%" if single.processor_cpu is not None else "?"
        )
        lines.append(
            f"- *Single events:* the gateway used {single.cpu_per_request_us:,.0f} µs of CPU "
            f"per request{versus}: the per-request Python (routing, header dict, decode and "
            "`message.normalize` of the event, Prometheus counters, a future per request that "
            "the log-writer thread resolves through `call_soon_threadsafe`) and the GIL shared "
            f"with the log writer. The processor child used {processor} of a core and wrk "
            f"{100 * single.wrk_cpu:.0f}%, so the gateway did not have a core to itself."
        )
    lines += [
        "",
        "`--profile DIR` repeats each Mainstem load under py-spy and prints where the gateway "
        "and the processor spend their samples.",
    ]
    return lines


def machine_facts() -> list[str]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    wrk_version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0]
    return [
        f"- nproc: {os.cpu_count()}" + (f" ({cpu_model})" if cpu_model else ""),
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"- load generator: {wrk_version or 'wrk'}, one thread (`-t1`), bodies rotated by "
        "`bench/wrk/rotate.lua`",
    ]


def report(
    results: Sequence[Result],
    traffic: dict[str, Traffic],
    options: Options,
    command: str,
    started: dt.datetime,
) -> str:
    batch, single = traffic["batch"], traffic["single"]
    lines = [
        "## Ingest",
        "",
        "<!-- Written by bench/ingest.py: this section is replaced on every run. -->",
        "",
        f"Command: `{command}`  ",
        f"Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        *machine_facts(),
        f"- traffic: `POST /v1/batch` bodies of {batch.events_per_request} events "
        f"(~{batch.mean_body_bytes / 1000:.0f} kB, ~{batch.mean_event_bytes} B per event, "
        f"track/page/identify 70/20/10, {batch.count} distinct bodies, Basic auth) and "
        f"`POST /v1/track` single events (~{single.mean_body_bytes} B, `writeKey` in the body, "
        f"{single.count} distinct bodies); every request carries fresh messageIds",
        f"- each scenario: fresh server process (Mainstem: fresh data dir, fsync on), "
        f"{options.warmup:g} s warm-up, then {options.duration:g} s measured",
        "",
        "Events/s counts only events in requests answered 200 (for Mainstem a 200 means "
        "committed to the event log). Ceilings: `bench/ceiling.py` on the same stack (uvicorn, "
        "uvloop, httptools, 1 worker, no access log); *bare* reads the body and answers 200, "
        "*decode* also runs `msgspec.json.decode` over the whole body (every message to a "
        "`dict`).",
        "",
        *results_table(results),
        "",
        "Targets:",
        "",
        *target_lines(results),
        "",
        "Server side (Mainstem's `/metrics`, deltas over the measured run) and CPU use (share of "
        "one core over the measured run):",
        "",
        *server_table(results),
        "",
        *limits_paragraph(results, traffic),
        "",
        "Machines here are noisy (±10-20% between runs); compare ratios measured in the same "
        "run rather than absolute figures across runs.",
        "",
    ]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace the ``## Ingest`` section of ``path``."""
    write_section("Ingest", section, path)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Durable ingest throughput of `mainstem serve` against HTTP and decode "
        "ceilings measured in the same run (wrk on 127.0.0.1)."
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=12.0,
        help="seconds of measured load per scenario (default: 12)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of unmeasured load before each measurement (default: 2)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help="wrk connections for every scenario (overrides the two below)",
    )
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=32,
        help="wrk connections for the batch scenarios (default: 32)",
    )
    parser.add_argument(
        "--single-connections",
        type=int,
        default=64,
        help="wrk connections for the single-event scenarios (default: 64)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="events per batch body (default: 100)"
    )
    parser.add_argument(
        "--scenarios", default="batch,single", help="comma-separated: batch, single (default: both)"
    )
    parser.add_argument(
        "--targets",
        default="mainstem,bare,decode",
        help="comma-separated: mainstem, bare, decode (default: all)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=DOCS,
        help=f"markdown file whose Ingest section is rewritten (default: {DOCS.relative_to(ROOT)})",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not write the docs file")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after each Mainstem measurement, run the load again under py-spy "
        "(gateway and processor) and write raw profiles to DIR",
    )
    parser.add_argument(
        "--profile-duration",
        type=float,
        default=10.0,
        help="seconds of the profiled run (default: 10)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each scenario, wait up to SECONDS for other processes to go quiet "
        "(default: 0, do not wait)",
    )
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1-600 s and --warmup 0-60 s")
    for name in ("connections", "batch_connections", "single_connections"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 10_000:
            parser.error(f"--{name.replace('_', '-')} must be 1-10000")
    if not 0 <= args.wait_idle <= 3600:
        parser.error("--wait-idle must be 0-3600 s")
    if not 1 <= args.batch_size <= 2500:
        parser.error("--batch-size must be 1-2500")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not args.scenarios or set(args.scenarios) - {"batch", "single"}:
        parser.error("--scenarios takes batch and/or single")
    if not args.targets or set(args.targets) - set(TARGETS):
        parser.error("--targets takes mainstem, bare and/or decode")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed — `make wrk` (or apt-get install wrk)", file=sys.stderr)
        return 2
    if args.profile is not None and py_spy() is None:
        print("--profile needs py-spy: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections={
            "batch": args.connections or args.batch_connections,
            "single": args.connections or args.single_connections,
        },
        profile=args.profile,
        profile_duration=args.profile_duration,
        verbose=args.verbose,
        wait_idle=args.wait_idle,
    )
    started = dt.datetime.now(dt.UTC)
    command = " ".join(
        [".venv/bin/python bench/ingest.py", *(sys.argv[1:] if argv is None else argv)]
    )
    write_key = "bench-" + secrets.token_hex(12)
    results: list[Result] = []
    with _workdir() as work:
        traffic = {
            "batch": write_traffic(
                work / "bodies-batch",
                "batch",
                write_key,
                bodies=24,
                batch_size=args.batch_size,
                seed=1,
            ),
            "single": write_traffic(
                work / "bodies-single", "single", write_key, bodies=512, batch_size=1, seed=2
            ),
        }
        for kind in args.scenarios:
            t = traffic[kind]
            print(
                f"{kind}: {t.count} bodies of {t.events_per_request} events, "
                f"~{t.mean_body_bytes:,} bytes/body, ~{t.mean_event_bytes} bytes/event"
            )
        order = [target for target in ("mainstem", "decode", "bare") if target in args.targets]
        for kind in args.scenarios:
            for target in order:
                results.append(measure(target, traffic[kind], options, work, write_key))
    print()
    print(
        f"Ingest, {args.duration:g} s per scenario, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print()
    for line in results_table(results):
        print(line)
    print()
    for line in target_lines(results):
        print(line)
    print()
    for line in server_table(results):
        print(line)
    if not args.no_docs:
        write_docs(args.docs, report(results, traffic, options, command, started))
        print(f"\nwrote the Ingest section of {args.docs}")
    return 0


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mainstem-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and temporary files removed", file=sys.stderr)
        sys.exit(130)
