"""``mainstem profile …``: parse, call :mod:`.report`, format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NamedTuple

import msgspec
import psycopg
import typer
from rich.text import Text
from rich.tree import Tree

from mainstem import timestamps
from mainstem.console import ConfigOption, DataDirOption, workspace_settings
from mainstem.console import fail as _fail
from mainstem.console import out as _out
from mainstem.errors import MainstemError
from mainstem.identity import report
from mainstem.identity.identifiers import ExternalId
from mainstem.identity.spec import IdentitySpec
from mainstem.identity.sqlite import FILE_NAME, SqliteProfileStore
from mainstem.identity.store import ProfileStore
from mainstem.identity.views import metadata
from mainstem.storage import PipelineStore
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

profile_app = typer.Typer(
    help="Merged profiles from identity resolution: show, explain, unmerge and delete.",
    no_args_is_help=True,
)
RefArgument = Annotated[
    str, typer.Argument(help="type:value (user_id:123, email:a@b.com) or a segment_id.")
]


class _Place(NamedTuple):
    """Where the profiles are: the data directory, or PostgreSQL when ``url`` is set."""

    root: Path
    url: str
    spec: IdentitySpec


def _workspace(config_path: str, data_dir: str | None) -> _Place:
    """The data directory, database and identity rules: from the workspace file when it loads
    (else the environment's settings and the default rules)."""
    settings, workspace = workspace_settings(config_path, data_dir)
    return _Place(
        Path(settings.data_dir),
        settings.database_url.reveal(),
        workspace.identity if workspace is not None else IdentitySpec(),
    )


def _open(config_path: str, data_dir: str | None, *, writable: bool = False) -> ProfileStore:
    return _open_in(_workspace(config_path, data_dir), writable=writable)


def _open_in(place: _Place, *, writable: bool = False) -> ProfileStore:
    if place.url:
        from mainstem.identity.postgres import PostgresProfileStore

        try:
            return PostgresProfileStore(place.url, readonly=not writable)
        except MainstemError as exc:  # unreachable, or a malformed database_url
            raise _fail(str(exc)) from exc
        except psycopg.Error as exc:
            raise _fail(f"cannot open the profiles in PostgreSQL: {exc}") from exc
    path = place.root / FILE_NAME
    if not path.exists():
        raise _fail(
            f"no profiles in {place.root} yet — start the server with `mainstem serve` "
            "(setting identity: true)"
        )
    return SqliteProfileStore(path, readonly=not writable)


def _events(place: _Place) -> PipelineStore:
    if place.url:
        return PostgresPipelineStore(place.url, readonly=True)
    return SqlitePipelineStore(place.root / "pipeline.db", readonly=True)


def _time(us: int) -> str:
    return timestamps.format_us(us)


def _show(profile: Any) -> dict[str, Any]:
    return {
        "segment_id": profile.segment_id,
        "collection": profile.collection,
        "external_ids": [
            {"type": i.id.type, "id": i.id.value, "created_at": _time(i.created_at)}
            for i in sorted(profile.identifiers.values(), key=lambda i: (i.created_at, i.id))
        ],
        "traits": {k: t.value for k, t in sorted(profile.traits.items()) if not t.removed},
        "metadata": metadata(profile),
        "merges": profile.merges,
        "links": sorted(profile.links),
    }


@profile_app.command("show")
def show(
    ref: RefArgument,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
) -> None:
    """Print one merged profile as JSON: identifiers, traits, metadata."""
    store = _open(config_path, data_dir)
    try:
        profile = report.find(store, ref)
    except MainstemError as exc:
        raise _fail(exc.message) from exc
    finally:
        store.close()
    typer.echo(msgspec.json.format(msgspec.json.encode(_show(profile)), indent=2).decode())


@profile_app.command("explain")
def explain(
    ref: RefArgument,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    events: Annotated[int, typer.Option(help="How many recent events to list.")] = 20,
) -> None:
    """Show why a profile looks the way it does: identifiers, merges, dropped identifiers,
    links and recent events, as a tree."""
    store = _open(config_path, data_dir)
    try:
        found = report.explain(store, ref, events=events)
    except MainstemError as exc:
        raise _fail(exc.message) from exc
    finally:
        store.close()
    _out.print(_tree(found), highlight=False)


@profile_app.command("delete")
def delete(
    ref: RefArgument,
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a profile: its identifiers, traits, links, merge history and event placements.
    The events stay in the event store; a later event with one of its identifiers starts a new
    profile. Safe while the server runs (the resolver re-reads what it cached)."""
    store = _open(config_path, data_dir, writable=True)
    try:
        profile = report.find(store, ref)
        if not yes:
            names = ", ".join(str(i) for i in profile.identifiers)
            typer.confirm(f"delete {profile.segment_id} ({names})?", abort=True)
        _, removed = report.delete(store, ref)
    except MainstemError as exc:
        raise _fail(exc.message) from exc
    finally:
        store.close()
    typer.echo(f"deleted {profile.segment_id} ({removed} profile(s) including merged ones)")


@profile_app.command("delete-identifier")
def delete_identifier(
    ref: RefArgument,
    identifier: Annotated[
        str, typer.Argument(help="The identifier to take off, as type:value (email:a@b.com).")
    ],
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
) -> None:
    """Take one identifier off a profile, as Segment's Delete Profile Identifier API: traits,
    events and merge history stay; a later event carrying it resolves as if no profile held
    it. The last user_id and group_id identifiers cannot be deleted."""
    kind, sep, value = identifier.partition(":")
    if not sep or not kind or not value:
        raise _fail(f"{identifier!r} is not type:value — e.g. email:a@b.com")
    store = _open(config_path, data_dir, writable=True)
    try:
        profile = report.delete_identifier(store, ref, ExternalId(kind, value))
    except MainstemError as exc:
        raise _fail(exc.message) from exc
    finally:
        store.close()
    names = ", ".join(str(i) for i in sorted(profile.identifiers))
    typer.echo(f"deleted {identifier} from {profile.segment_id} (now: {names})")


@profile_app.command("unmerge")
def unmerge(
    segment_id: Annotated[
        str,
        typer.Argument(
            help="The merged-away segment_id, as `mainstem profile explain` lists it under merges."
        ),
    ],
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
) -> None:
    """Split a profile back along a recorded merge: the merging message is kept out of identity
    and the linked profiles' events are resolved again, so every event, identifier and trait
    lands where it would have had the merge never happened. Safe while the server runs."""
    place = _workspace(config_path, data_dir)
    store = _open_in(place, writable=True)
    events = _events(place)
    try:
        split = report.unmerge(
            store, events, segment_id, rules=place.spec.rules, custom=place.spec.custom
        )
    except MainstemError as exc:
        raise _fail(exc.message) from exc
    finally:
        events.close()
        store.close()
    merge = split.merge
    typer.echo(
        f"unmerged {merge.segment_id} from {merge.canonical_segment_id}: "
        f"{merge.event_type} {merge.message_id} is kept out of identity; "
        f"{len(split.seqs) - 1} event(s) resolved again into {len(split.live())} profile(s)"
    )
    for segment_id in split.live():
        profile = split.changes.profiles[segment_id]
        names = ", ".join(str(i) for i in sorted(profile.identifiers))
        typer.echo(f"  {segment_id}: {names}")


def _tree(found: report.Explanation) -> Tree:
    profile = found.profile
    tree = Tree(
        Text(
            f"{profile.segment_id} ({profile.collection}) · first seen "
            f"{_time(profile.created_at)} · last seen {_time(profile.updated_at)}",
            style="bold",
        )
    )
    ids = tree.add(Text(f"identifiers ({len(profile.identifiers)})"))
    for i in sorted(profile.identifiers.values(), key=lambda i: (i.created_at, i.id)):
        ids.add(
            Text(
                f"{i.id} · first seen {_time(i.created_at)} in {i.first_message_id} "
                f"(source {i.source_id})"
            )
        )
    merges = tree.add(Text(f"merges ({len(found.merges)})"))
    for merge in found.merges:
        merges.add(
            Text(
                f"{merge.segment_id} → {merge.canonical_segment_id} by {merge.event_type} "
                f"{merge.message_id} at {_time(merge.timestamp)}: matched {merge.via} "
                f"(within {merge.rule})"
            )
        )
    if found.unmerges:
        undone = tree.add(Text(f"unmerges ({len(found.unmerges)})"))
        for u in found.unmerges:
            undone.add(
                Text(
                    f"{u.segment_id} split off {u.canonical_segment_id} at {_time(u.at)}: "
                    f"#{u.seq} {u.message_id} kept out of identity"
                )
            )
    dropped = tree.add(Text(f"identifiers kept out ({len(found.violations)})"))
    for v in found.violations:
        dropped.add(Text(f"{v.drop.id} on {v.message_id}: {v.drop.reason} ({v.drop.rule})"))
    traits = {k: t for k, t in sorted(profile.traits.items()) if not t.removed}
    branch = tree.add(Text(f"traits ({len(traits)})"))
    for key, trait in traits.items():
        value = msgspec.json.encode(trait.value).decode()
        branch.add(Text(f"{key} = {value} · {_time(trait.updated_at)} (source {trait.source_id})"))
    links = tree.add(Text(f"links ({len(found.links)})"))
    for linked in found.links:
        names = ", ".join(str(i) for i in linked.identifiers)
        links.add(Text(f"{linked.segment_id} ({linked.collection}): {names}"))
    recent = tree.add(Text(f"recent events ({len(found.events)})"))
    for event in found.events:
        recent.add(
            Text(f"#{event.seq} {event.type} {event.message_id} at {_time(event.timestamp)}")
        )
    return tree
