"""The admin JSON API (``/api/v1``), plus ``/health`` and ``/metrics``.

Every ``/api/v1`` route needs ``Authorization: Bearer <admin_token>``. Events are returned exactly
as stored: the stored JSON is spliced into the answer, never re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mainstem import __version__, listing, suppression, timestamps, ui
from mainstem.config import Source
from mainstem.destinations import service as destination_service
from mainstem.destinations.spec import Destination
from mainstem.destinations.state import DeliveryState
from mainstem.errors import MainstemError, NotFound, RequestError, Unauthorized
from mainstem.identity import views as profile_views
from mainstem.identity.editor import ProfileEditor
from mainstem.plans import report as violations_report
from mainstem.secret import Secret
from mainstem.settings import parse_duration
from mainstem.storage import EventQuery, PipelineStore, RejectionQuery, ViolationQuery
from mainstem.warehouse import service as warehouse_service
from mainstem.warehouse.dialects import Dialect

_encode = msgspec.json.Encoder().encode
MAX_LIMIT = 1000
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]


def parse_since(value: str | None, now: int | None = None) -> int | None:
    """``since`` as an ISO-8601 time or a look-back duration (``15m``, ``24h``, ``7d``)."""
    if value is None or value == "":
        return None
    parsed = timestamps.parse(value)
    if parsed is not None:
        return parsed
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise RequestError(
            f"since={value!r} is neither an ISO-8601 time "
            "(2024-05-01T10:00:00Z) nor a duration (15m, 24h, 7d)",
            code="invalid_since",
        ) from None
    return (now if now is not None else timestamps.now_us()) - int(seconds * 1_000_000)


def parse_cursor(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise RequestError(
            f"{name}={value!r} is not a cursor — pass back the next_cursor of the previous page",
            code="invalid_cursor",
        )
    return int(value)


def build_api(
    store: Callable[[], PipelineStore],
    admin_token: Callable[[], Secret],
    health: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes],
    delivery: Callable[[], tuple[Sequence[Destination], DeliveryState | None]] | None = None,
    sources: Callable[[], Sequence[Source]] | None = None,
    profiles: Callable[[], ProfileEditor | None] | None = None,
    warehouse: Callable[[], Dialect | None] | None = None,
    regulator: Callable[[], PipelineStore] | None = None,
) -> FastAPI:
    """The admin API over the app's read-only event store (``store``); ``regulator`` opens a
    short-lived writable one for ``POST /api/v1/regulations``."""
    app = FastAPI(
        title="Mainstem admin API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )

    @app.exception_handler(MainstemError)
    async def _mainstem_error(request: Request, exc: MainstemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message}},
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
            for error in exc.errors()
        )
        return JSONResponse(
            {"error": {"code": "invalid_parameter", "message": problems}}, status_code=400
        )

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "missing admin token — send `Authorization: Bearer "
                "<admin_token>` (admin_token is in mainstem.yaml)"
            )
        if not admin_token().matches(token.strip()):
            raise Unauthorized("wrong admin token — use admin_token from mainstem.yaml")

    @app.get("/api/v1/events", summary="Stored events, newest first (or tail with `after`)")
    def list_events(
        request: Request,
        source: str | None = None,
        type: str | None = None,
        event: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        message_id: str | None = None,
        since: str | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
        after: str | None = None,
    ) -> Response:
        authorize(request)
        query = EventQuery(
            source=source,
            type=type,
            event=event,
            user_id=user_id,
            anonymous_id=anonymous_id,
            message_id=message_id,
            since=parse_since(since),
            before=parse_cursor(cursor, "cursor"),
            after=parse_cursor(after, "after"),
            limit=limit,
        )
        rows = store().events(query)
        data = [listing.event_json(row) for row in rows]
        return _page(data, rows[-1].seq if rows else None, limit, query.after)

    @app.get("/api/v1/rejections", summary="Rejected messages with Segment's discard codes")
    def list_rejections(
        request: Request,
        source: str | None = None,
        code: str | None = None,
        since: str | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
        after: str | None = None,
    ) -> Response:
        authorize(request)
        query = RejectionQuery(
            source=source,
            code=code,
            since=parse_since(since),
            before=parse_cursor(cursor, "cursor"),
            after=parse_cursor(after, "after"),
            limit=limit,
        )
        rows = store().rejections(query)
        data = [listing.rejection_json(row) for row in rows]
        return _page(data, rows[-1].seq if rows else None, limit, query.after)

    @app.get("/api/v1/violations", summary="Tracking-plan violations: counts over time, samples")
    def list_violations(
        request: Request,
        source: str | None = None,
        event: str | None = None,
        type: str | None = None,
        field: str | None = None,
        since: str = violations_report.DEFAULT_SINCE,
        bucket: str = violations_report.DEFAULT_BUCKET,
        samples: Annotated[int, Query(ge=0, le=violations_report.MAX_SAMPLES)] = 5,
    ) -> Response:
        authorize(request)
        query = ViolationQuery(
            source=source, event=event, type=type, field=field, since=parse_since(since)
        )
        body = violations_report.report(
            store(), query, violations_report.bucket_us(bucket), samples
        )
        return _json(body)

    def _delivery() -> tuple[Sequence[Destination], DeliveryState | None]:
        return delivery() if delivery is not None else ((), None)

    @app.get("/api/v1/destinations", summary="Destinations with their position, lag and totals")
    def list_destinations(request: Request) -> Response:
        authorize(request)
        destinations, state = _delivery()
        rows = destination_service.overview(destinations, state, store())
        return _json({"data": rows})

    @app.get(
        "/api/v1/destinations/{destination_id}/deliveries",
        summary="A destination's delivery attempts, newest first",
    )
    def list_deliveries(
        request: Request, destination_id: str, failed: bool = False, limit: Limit = 100
    ) -> Response:
        authorize(request)
        destinations, state = _delivery()
        destination_service.find(destinations, destination_id)
        attempts = state.attempts(destination_id, failed=failed, limit=limit) if state else []
        data = [destination_service.attempt_json(attempt) for attempt in attempts]
        return _json({"data": data})

    @app.get(
        "/api/v1/destinations/{destination_id}/explain",
        summary="Whether a stored event goes to a destination, and why",
    )
    def explain_routing(
        request: Request, destination_id: str, message_id: Annotated[str, Query(min_length=1)]
    ) -> Response:
        authorize(request)
        destinations, _ = _delivery()
        destination = destination_service.find(destinations, destination_id)
        data = destination_service.explain(destination, store(), message_id)
        return _json({"data": data})

    def _warehouse() -> Dialect:
        dialect = warehouse() if warehouse is not None else None
        if dialect is None:
            raise NotFound(
                "the warehouse is off (settings.warehouse: none) — set it to duckdb or a "
                "postgresql:// URL",
                code="warehouse_off",
            )
        return dialect

    @app.get("/api/v1/warehouse/loads", summary="The warehouse's loads, newest first")
    def list_loads(request: Request, limit: Limit = 20) -> Response:
        authorize(request)
        data = warehouse_service.loads_json(_warehouse(), limit)
        return _json({"data": data})

    @app.get("/api/v1/warehouse/schema", summary="The warehouse's tables and schema changes")
    def warehouse_schema(request: Request, changes: Limit = 20) -> Response:
        authorize(request)
        body = warehouse_service.schema_json(_warehouse(), changes)
        return _json(body)

    @app.get("/api/v1/sources", summary="Sources with their write keys and event totals")
    def list_sources(request: Request) -> Response:
        authorize(request)
        totals: dict[tuple[str, str], int] = {}
        for (name, label), value in store().counters().items():
            key = (name, label.split("/", 1)[0])
            totals[key] = totals.get(key, 0) + value
        data = [
            {
                "id": source.id,
                "name": source.name,
                "enabled": source.enabled,
                "write_key": source.write_key.reveal(),
                "tracking_plan": source.tracking_plan.name if source.tracking_plan else None,
                **{
                    counter: totals.get((counter, source.id), 0)
                    for counter in (
                        "events_stored",
                        "events_rejected",
                        "events_blocked",
                        "events_suppressed",
                    )
                },
            }
            for source in (sources() if sources is not None else ())
        ]
        return _json({"data": data})

    @app.post(
        "/api/v1/regulations",
        summary="Suppress or unsuppress user ids (Segment's Regulations API, suppression only)",
    )
    def create_regulation(request: Request, body: Annotated[Any, Body()]) -> Response:
        authorize(request)
        regulation = suppression.parse(body, now=timestamps.now_us())
        if regulator is None:
            raise RuntimeError("storage is not open")
        writable = regulator()
        try:
            writable.regulate(regulation)
        finally:
            writable.close()
        return _json({"data": {"regulateId": regulation.id}})

    @app.get("/api/v1/regulations", summary="Regulations, newest first")
    def list_regulations(
        request: Request, limit: Limit = 100, cursor: str | None = None
    ) -> Response:
        authorize(request)
        rows = store().regulations(parse_cursor(cursor, "cursor"), limit)
        more = len(rows) == limit
        return _json(
            {
                "data": {
                    "regulations": [suppression.regulation_json(r) for _, r in rows],
                    "pagination": {"next_cursor": str(rows[-1][0]) if more else None},
                }
            }
        )

    @app.get("/api/v1/regulations/{regulate_id}", summary="One regulation and its status")
    def get_regulation(request: Request, regulate_id: str) -> Response:
        authorize(request)
        regulation = store().regulation(regulate_id)
        if regulation is None:
            raise NotFound(
                f"no regulation {regulate_id!r} — GET /api/v1/regulations lists them",
                code="regulation_not_found",
            )
        return _json({"data": {"regulation": suppression.regulation_json(regulation)}})

    @app.get("/api/v1/suppressions", summary="The suppressed user ids, in sorted order")
    def list_suppressions(
        request: Request, limit: Limit = 1000, cursor: str | None = None
    ) -> Response:
        authorize(request)
        page = suppression.suppressed_page(store().suppressed(), cursor or None, limit)
        return _json({"data": page})

    @app.get("/ui", summary="The web UI", tags=["ui"], response_class=HTMLResponse)
    def get_ui() -> Response:
        return Response(ui.asset("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/ui/{name}", summary="The web UI's script and style sheet", tags=["ui"])
    def get_ui_asset(name: str) -> Response:
        return Response(ui.asset(name), media_type=ui.media_type(name))

    @app.post(
        "/api/v1/profiles/{segment_id}/unmerge",
        summary="Split a merged-away profile back off, resolving the linked events again",
    )
    def unmerge_profile(request: Request, segment_id: str) -> Response:
        authorize(request)
        editor = profiles() if profiles is not None else None
        if editor is None:
            raise NotFound("identity resolution is off — set `identity: true` in settings")
        done = editor.unmerge(segment_id)
        return _json({"data": profile_views.split(done)})

    @app.get("/health", summary="Ready when storage is open", tags=["operations"])
    def get_health() -> JSONResponse:
        report = health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @app.get("/metrics", summary="Prometheus metrics", tags=["operations"])
    def get_metrics() -> Response:
        return Response(metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _json(body: dict[str, Any]) -> Response:
    return Response(_encode(body), media_type="application/json")


def _page(
    data: list[dict[str, Any]], last_seq: int | None, limit: int, after: int | None
) -> Response:
    body: dict[str, Any]
    if after is not None:  # tailing: where to continue, even when nothing new arrived
        body = {"data": data, "next_after": str(last_seq if last_seq is not None else after)}
    else:
        more = last_seq is not None and len(data) == limit
        body = {"data": data, "next_cursor": str(last_seq) if more else None}
    return _json(body)
