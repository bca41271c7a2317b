"""The stored analyses: list newest first with a cursor, get one, delete one."""
from flask import Blueprint, jsonify, request

from backend.auth import authenticate
from backend.errors import ApiError
from backend.store import get_store

bp = Blueprint("analyses", __name__)

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


@bp.get("/analyses")
def list_analyses():
    authenticate()
    items, next_cursor = get_store().list(_limit(), request.args.get("cursor") or None)
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/analyses/<analysis_id>")
def get_analysis(analysis_id):
    authenticate()
    doc = get_store().get(analysis_id)
    if doc is None:
        raise _not_found(analysis_id)
    return jsonify(doc)


@bp.delete("/analyses/<analysis_id>")
def delete_analysis(analysis_id):
    authenticate()
    if not get_store().delete(analysis_id):
        raise _not_found(analysis_id)
    return "", 204


def _limit():
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LIMIT):
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def _not_found(analysis_id):
    return ApiError(404, "not_found", f"There is no analysis with id '{analysis_id}'.")
