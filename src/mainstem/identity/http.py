"""The Profile API, compatible with Segment's (reference §4), on the server under ``/v1/spaces/``.

``GET /v1/spaces/{space}/collections/{users|accounts}/profiles/{id}/{traits|external_ids|events|
metadata|links}`` where ``{id}`` is ``type:value`` (``user_id:u1``, ``email:a@b.com``,
``group_id:g1``) or a ``segment_id``. Auth is HTTP Basic with the workspace ``admin_token`` as
the username and an empty password, as Segment's access token. One workspace is one space:
``{space}`` is accepted as given. Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from mainstem import timestamps
from mainstem.errors import MainstemError, NotFound, RequestError, Unauthorized
from mainstem.identity import views
from mainstem.identity.editor import ProfileEditor
from mainstem.identity.graph import Profile
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.store import ProfileStore
from mainstem.secret import Secret
from mainstem.storage import EventQuery, PipelineStore

PREFIX = "/v1/spaces/{space}/collections/{collection}/profiles/{profile_id}"
NOT_FOUND = "Profile was not found."
_encode = msgspec.json.Encoder().encode
Limit = Annotated[int, Query(ge=1, le=200, description="Traits per page.")]
ListLimit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
LinkLimit = Annotated[int, Query(ge=1, le=20, description="Links per page.")]
_decode = msgspec.json.Decoder().decode
T = TypeVar("T")


class AuthenticationError(Unauthorized):
    code = "authentication_error"


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def _list(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _page(items: list[T], next: str | None, limit: int) -> tuple[list[T], str]:
    """The page of ``items`` that the cursor ``next`` starts, and the cursor of the page after
    it (``""`` on the last page)."""
    start = _offset(next)
    more = start + limit < len(items)
    return items[start : start + limit], str(start + limit) if more else ""


def _offset(value: str | None) -> int:
    if not value:
        return 0
    if not value.isdigit():
        raise RequestError(
            f"next={value!r} is not a cursor — pass back cursor.next of the previous page",
            code="invalid_request_error",
        )
    return int(value)


def build_profiles_api(
    profiles: Callable[[], ProfileStore | None],
    events: Callable[[], PipelineStore],
    admin_token: Callable[[], Secret],
    editor: Callable[[], ProfileEditor | None] = lambda: None,
) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Request-Id"] = str(uuid.uuid4())
        return response

    @app.exception_handler(MainstemError)
    async def _error(request: Request, exc: MainstemError) -> JSONResponse:
        code = exc.code
        if exc.status == 401:
            code = "authentication_error"
        headers = {"WWW-Authenticate": 'Basic realm="profiles"'} if exc.status == 401 else None
        return JSONResponse(
            {"error": {"code": code, "message": exc.message}},
            status_code=exc.status,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
            for error in exc.errors()
        )
        return JSONResponse(
            {"error": {"code": "validation_error", "message": problems}}, status_code=400
        )

    def authorize(request: Request) -> None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        token = ""
        if scheme.lower() == "basic":
            try:
                token = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                token = ""
        if not token:
            raise AuthenticationError(
                "missing access token — send HTTP Basic auth with the admin_token from "
                "mainstem.yaml as the username and an empty password"
            )
        if not admin_token().matches(token):
            raise AuthenticationError("wrong access token — use admin_token from mainstem.yaml")

    def store() -> ProfileStore:
        found = profiles()
        if found is None:
            raise NotFound(
                "identity resolution is off — set `identity: true` in settings", code="not_found"
            )
        return found

    def find(request: Request, collection: str, profile_id: str) -> tuple[ProfileStore, Profile]:
        authorize(request)
        if collection not in ("users", "accounts"):
            raise NotFound(
                f"unknown collection {collection!r} — use users or accounts", code="not_found"
            )
        db = store()
        kind, sep, value = profile_id.partition(":")
        segment_id = db.owner(ExternalId(kind, value)) if sep else db.canonical(profile_id)
        profile = db.load(segment_id) if segment_id is not None else None
        if profile is None or profile.collection != collection:
            raise NotFound(NOT_FOUND, code="not_found")
        return db, profile

    def url(request: Request) -> str:
        return request.url.path

    @app.get(PREFIX + "/traits")
    def get_traits(
        request: Request,
        space: str,
        collection: str,
        profile_id: str,
        limit: Limit = 10,
        include: str | None = None,
        verbose: bool = False,
        next: str | None = None,
    ) -> Response:
        _, profile = find(request, collection, profile_id)
        wanted = _list(include)
        items = sorted(
            (key, trait)
            for key, trait in profile.traits.items()
            if not trait.removed and (wanted is None or key in wanted)
        )  # keys are unique: the traits never get compared
        page, following = _page(items, next, limit)
        return _json(
            {
                "traits": views.traits(page, verbose),
                "cursor": views.cursor(url(request), bool(following), following, limit),
            }
        )

    @app.get(PREFIX + "/external_ids")
    def get_external_ids(
        request: Request,
        space: str,
        collection: str,
        profile_id: str,
        limit: ListLimit = 25,
        include: str | None = None,
        verbose: bool = False,
        next: str | None = None,
    ) -> Response:
        _, profile = find(request, collection, profile_id)
        wanted = _list(include)
        items = sorted(
            (i for i in profile.identifiers.values() if wanted is None or i.id.type in wanted),
            key=lambda i: (-i.created_at, i.id.type, i.id.value),
        )
        page, following = _page(items, next, limit)
        return _json(
            {
                "data": [views.external_id(i, collection, verbose) for i in page],
                "cursor": views.cursor(url(request), bool(following), following),
            }
        )

    @app.get(PREFIX + "/events")
    def get_events(
        request: Request,
        space: str,
        collection: str,
        profile_id: str,
        limit: ListLimit = 10,
        include: str | None = None,
        exclude: str | None = None,
        start: str | None = None,
        end: str | None = None,
        next: str | None = None,
    ) -> Response:
        db, profile = find(request, collection, profile_id)
        wanted, unwanted = _list(include), _list(exclude) or []
        since, until = timestamps.parse(start), timestamps.parse(end)
        members = db.members(profile.segment_id)
        data: list[dict[str, Any]] = []
        before = _offset(next) or None
        more = False
        while len(data) < limit:
            placed = db.events(members, limit=limit, before=before)
            if not placed:
                break
            for item in placed:
                before = item.seq
                if since is not None and item.timestamp < since:
                    continue
                if until is not None and item.timestamp > until:
                    continue
                rows = events().events(EventQuery(after=item.seq - 1, limit=1))
                if not rows or rows[0].seq != item.seq:
                    continue  # gone from the event store (retention)
                message = _decode(rows[0].body)
                name = message.get("event") or message.get("name")
                if (wanted is not None and name not in wanted) or name in unwanted:
                    continue
                data.append(views.event(message, rows[0].source_id, profile.segment_id))
                if len(data) == limit:
                    more = bool(db.events(members, limit=1, before=item.seq))
                    break
        return _json(
            {
                "data": data,
                "cursor": views.cursor(url(request), more, str(before) if more else ""),
            }
        )

    @app.get(PREFIX + "/metadata")
    def get_metadata(
        request: Request, space: str, collection: str, profile_id: str, verbose: bool = False
    ) -> Response:
        _, profile = find(request, collection, profile_id)
        return _json({"metadata": views.metadata(profile)})

    @app.get(PREFIX + "/links")
    def get_links(
        request: Request,
        space: str,
        collection: str,
        profile_id: str,
        limit: LinkLimit = 20,
    ) -> Response:
        db, profile = find(request, collection, profile_id)
        other = "accounts" if collection == "users" else "users"
        data = []
        for segment_id in sorted(profile.links)[:limit]:
            linked = db.load(segment_id)
            if linked is None:
                continue
            data.append(
                {
                    "to_collection": other,
                    "external_ids": [
                        views.external_id(i, other, verbose=False)
                        for i in sorted(linked.identifiers.values(), key=lambda i: i.created_at)
                    ],
                }
            )
        return _json({"data": data})

    @app.post(PREFIX + "/external_ids/delete")
    def delete_external_id(
        request: Request,
        space: str,
        collection: str,
        profile_id: str,
        body: Annotated[Any, Body()],
    ) -> Response:
        """Segment's Delete Profile Identifier API (reference §3.9): exactly one identifier,
        users only."""
        authorize(request)
        if collection != "users":
            raise NotFound(
                "identifiers can be deleted from users profiles only — account profiles are "
                "keyed by their group_id",
                code="not_found",
            )
        ids = body.get("delete_external_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) != 1 or not _is_external_id(ids[0]):
            raise RequestError(
                'send {"delete_external_ids": [{"id": "...", "type": "..."}]} with exactly one '
                "identifier"
            )
        found = editor()
        if found is None:
            raise NotFound(
                "identity resolution is off — set `identity: true` in settings", code="not_found"
            )
        id = ExternalId(ids[0]["type"], ids[0]["id"])
        profile = found.delete_identifier(profile_id, id)
        return _json(
            {
                "segment_id": profile.segment_id,
                "deleted_external_ids": [{"id": id.value, "type": id.type}],
            }
        )

    return app


def _is_external_id(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and isinstance(item.get("type"), str)
        and bool(item["id"])
        and bool(item["type"])
    )
