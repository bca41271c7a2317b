"""The stored analyses: list newest first with a cursor, get one, its full-size images, delete one.

Each caller sees only the analyses it owns; someone else's id answers 404, as an unknown id does.
Administrators (custom claim admin: true) may read and delete any, and list all with ?owner=all.
"""
from flask import Blueprint, Response, jsonify, request

from backend.analysis import objects
from backend.auth import authenticate
from backend.errors import InvalidInput, NotAllowed, NotFound
from backend.images import get_image_store
from backend.store import get_store

bp = Blueprint("analyses", __name__)

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
IMAGE_CACHE_CONTROL = "private, max-age=31536000, immutable"  # an object never changes; only its owner sees it


@bp.get("/analyses")
def list_analyses():
    owner = _listed_owner(authenticate())
    items, next_cursor = get_store().list(_limit(), request.args.get("cursor") or None, owner=owner)
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/analyses/<analysis_id>")
def get_analysis(analysis_id):
    return jsonify(_stored(analysis_id))


@bp.get("/analyses/<analysis_id>/images/<name>")
def get_image(analysis_id, name):
    """One object of the analysis, its sha256 as ETag: a browser asks again only with If-None-Match."""
    doc = _stored(analysis_id)
    if name not in objects.NAMES:
        raise NotFound("not_found", f"An analysis's images are {', '.join(objects.NAMES)}.")
    entry = objects.entry(doc, name)
    store = get_image_store()
    if entry is None or store is None:
        raise image_missing(analysis_id, name)
    headers = {"ETag": f'"{entry["sha256"]}"', "Cache-Control": IMAGE_CACHE_CONTROL}
    if request.if_none_match.contains(entry["sha256"]):
        return Response(status=304, headers=headers)
    data = store.get(entry["path"])
    if data is None:
        raise image_missing(analysis_id, name)
    return Response(data, mimetype=entry["content_type"], headers=headers)


@bp.delete("/analyses/<analysis_id>")
def delete_analysis(analysis_id):
    """The objects first, then the document: a 503 on the way leaves the analysis readable, and a retry finishes."""
    doc = _stored(analysis_id)
    store = get_image_store()
    if store is not None:
        objects.delete(store, doc)
    if not get_store().delete(analysis_id, owner=doc["owner"]):
        raise not_found(analysis_id)
    return "", 204


def _stored(analysis_id):
    doc = get_store().get(analysis_id, owner=owner_scope(authenticate()))
    if doc is None:
        raise not_found(analysis_id)
    return doc


def owner_scope(caller):
    """Whose analyses the caller may reach by id: its own, or anyone's (None) for an administrator."""
    return None if caller.admin else caller.uid


def _listed_owner(caller):
    """The caller's own analyses, or everyone's (None) for an administrator asking ?owner=all."""
    wanted = request.args.get("owner")
    if wanted is None:
        return caller.uid
    if wanted != "all":
        raise InvalidInput("invalid_owner")
    if not caller.admin:
        raise NotAllowed("forbidden")
    return None


def _limit():
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LIMIT):
        raise InvalidInput("invalid_limit", maximum=MAX_LIMIT)
    return int(raw)


def not_found(analysis_id):
    return NotFound("not_found", f"There is no analysis with id '{analysis_id}'.")


def image_missing(analysis_id, name):
    return NotFound("image_missing", name=name)
