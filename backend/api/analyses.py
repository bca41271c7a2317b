"""The stored analyses: list newest first with a cursor, get one, delete one.

Each caller sees only the analyses it owns; someone else's id answers 404, as an unknown id does.
Administrators (custom claim admin: true) may read and delete any, and list all with ?owner=all.
"""
from flask import Blueprint, jsonify, request

from backend.auth import authenticate
from backend.errors import ApiError
from backend.store import get_store

bp = Blueprint("analyses", __name__)

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


@bp.get("/analyses")
def list_analyses():
    owner = _listed_owner(authenticate())
    items, next_cursor = get_store().list(_limit(), request.args.get("cursor") or None, owner=owner)
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/analyses/<analysis_id>")
def get_analysis(analysis_id):
    doc = get_store().get(analysis_id, owner=_owner(authenticate()))
    if doc is None:
        raise _not_found(analysis_id)
    return jsonify(doc)


@bp.delete("/analyses/<analysis_id>")
def delete_analysis(analysis_id):
    if not get_store().delete(analysis_id, owner=_owner(authenticate())):
        raise _not_found(analysis_id)
    return "", 204


def _owner(caller):
    """Whose analyses the caller may reach by id: its own, or anyone's (None) for an administrator."""
    return None if caller.admin else caller.uid


def _listed_owner(caller):
    """The caller's own analyses, or everyone's (None) for an administrator asking ?owner=all."""
    wanted = request.args.get("owner")
    if wanted is None:
        return caller.uid
    if wanted != "all":
        raise ApiError(400, "invalid_owner", "owner may only be 'all' (everyone's analyses, for administrators).")
    if not caller.admin:
        raise ApiError(403, "forbidden", "Only administrators may list everyone's analyses.")
    return None


def _limit():
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LIMIT):
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def _not_found(analysis_id):
    return ApiError(404, "not_found", f"There is no analysis with id '{analysis_id}'.")
