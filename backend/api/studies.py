"""Studies: a series of DICOM slices in (a ZIP or the files), one answer with its slices and key images out.

POST /studies reads the files' headers, keeps the chosen series' files and the document, and answers 202
while a queue (STUDY_QUEUE) analyses it in the background; GET /studies/<id> shows its progress, then its
answer. The owner rule is the analyses': another caller's id answers 404.
"""

import hashlib
import io
import zipfile
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from backend import ratelimit
from backend.analysis import objects
from backend.analysis.record import Stores
from backend.analysis.study import public
from backend.api.analyses import IMAGE_CACHE_CONTROL, _limit, _listed_owner, owner_scope
from backend.auth import authenticate
from backend.errors import InvalidInput, NotFound
from backend.imaging.archive import Member, StudyLimits, Upload, collect
from backend.ml.classifier import get_classifier
from backend.store import get_store
from backend.studies import get_queue, results
from backend.studies.create import create_study, delete_with_received_copies, display_name

bp = Blueprint("studies", __name__)

FORM_OVERHEAD = 2**20  # multipart headers and the small fields, beyond the files themselves
SLICE_IMAGES = objects.STUDY_IMAGES


@bp.post("/studies")
def post_study():
    caller = authenticate()
    ratelimit.check(caller)
    limits = StudyLimits.from_config(current_app.config)
    files, form = _read_form(limits)
    upload = collect([(f.filename or "upload", f.stream) for f in files], limits)
    doc = create_study(
        Stores.of(current_app),
        get_queue(),
        get_classifier(),
        caller.uid,
        upload,
        filename=display_name([f.filename or "upload" for f in files]),
        window=form.get("window") or "lung",
        series_uid=form.get("series_uid") or None,
        limits=limits,
    )
    return _accepted(doc)


def _read_form(limits: StudyLimits):
    """The `file` parts (spooled to temporary files by werkzeug past 500 KB) and the form, within the study's
    limits rather than a single slice's."""
    if (request.content_length or 0) > limits.max_bytes + FORM_OVERHEAD:
        raise limits.too_large()
    request.max_content_length = limits.max_bytes + FORM_OVERHEAD
    request.max_form_parts = limits.max_slices + 16
    try:
        files, form = request.files.getlist("file"), request.form
    except RequestEntityTooLarge as exc:  # more parts than a study may have slices
        raise InvalidInput("too_many_slices", maximum=limits.max_slices) from exc
    files = [f for f in files if f.filename or f.content_length]
    if not files:
        raise InvalidInput("missing_file")
    return files, form


@bp.get("/studies")
def list_studies():
    owner = _listed_owner(authenticate())
    study_uid = request.args.get("study_uid") or None
    items, next_cursor = get_store().list_studies(
        _limit(), request.args.get("cursor") or None, owner=owner, study_uid=study_uid
    )
    return jsonify(items=[_summary(doc) for doc in items], next_cursor=next_cursor)


def _summary(doc: dict) -> dict:
    """A listed study: everything but the per-slice rows (GET /studies/<id> has them)."""
    view = public(doc)
    view.pop("slices", None)
    return view


@bp.get("/studies/<study_id>")
def get_study(study_id):
    return jsonify(public(_stored(study_id)))


@bp.delete("/studies/<study_id>")
def delete_study(study_id):
    """Objects first, then the document; a study still running stops at its next batch (its worker finds the
    document gone and removes what it wrote meanwhile)."""
    doc = _stored(study_id)
    get_queue().cancel(study_id)
    if not delete_with_received_copies(Stores.of(current_app), doc):
        raise _not_found(study_id)
    return "", 204


@bp.get("/studies/<study_id>/slices/<int:index>/<name>")
def get_slice_image(study_id, index, name):
    """A slice's 400 px JPEG or heatmap overlay, its sha256 as ETag (the objects never change)."""
    doc = _stored(study_id)
    if name not in SLICE_IMAGES:
        raise NotFound("not_found", f"A slice's images are {', '.join(SLICE_IMAGES)}.")
    if not 0 <= index < doc["slice_count"]:
        raise NotFound("not_found", f"This study's slices are 0 to {doc['slice_count'] - 1}.")
    if doc["status"] != "done":
        raise InvalidInput("study_not_done", status=doc["status"])
    store = current_app.extensions["image_store"]
    data = store.get(objects.slice_path(doc["owner"], doc["id"], index, name)) if store else None
    if data is None:
        raise NotFound("image_missing", name=f"slice {index} {name}")
    etag = hashlib.sha256(data).hexdigest()
    headers = {"ETag": f'"{etag}"', "Cache-Control": IMAGE_CACHE_CONTROL}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    return Response(data, mimetype="image/jpeg", headers=headers)


@bp.get("/studies/<study_id>/dicom/<name>")
def get_dicom_results(study_id, name):
    """The study's answer as DICOM, the very instances sent to DICOM_RESULTS_TO: `sr.dcm` (the Structured Report)
    or `key-images.zip` (the key images' Secondary Capture instances)."""
    doc = _stored(study_id)
    if name not in ("sr.dcm", "key-images.zip"):
        raise NotFound("not_found", "A study's DICOM results are sr.dcm and key-images.zip.")
    if doc["status"] != "done":
        raise InvalidInput("study_not_done", status=doc["status"])
    paths = results.paths(doc)
    store = current_app.extensions["image_store"]
    files = [store.get(path) for path in paths] if store and paths else []
    if not files or any(data is None for data in files):
        raise NotFound("no_dicom_results")
    if name == "sr.dcm":
        return Response(
            files[0],
            mimetype="application/dicom",
            headers={"Content-Disposition": f'attachment; filename="{doc["id"]}-sr.dcm"'},
        )
    # Entries dated when the study finished (UTC), not when asked for: every download of a study is the same file.
    finished = datetime.fromisoformat(doc["finished_at"]).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path, data in zip(paths[1:], files[1:], strict=True):
            entry = zipfile.ZipInfo(path.rsplit("/", 1)[1], date_time=finished)
            entry.external_attr = 0o600 << 16  # what writestr gives a file named by a string
            archive.writestr(entry, data)
    return Response(
        buffer.getvalue(),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{doc["id"]}-key-images.zip"'},
    )


@bp.post("/studies/<study_id>/reanalyze")
def reanalyze_study(study_id):
    """The current model on the kept DICOM files of the study's series, with its window: a new study."""
    caller = authenticate()
    ratelimit.check(caller)
    earlier = _stored(study_id)
    stores = Stores.of(current_app)
    if stores.images is None:
        raise NotFound("image_missing", name="DICOM files")

    def reader(index):
        def read():
            data = stores.images.get(objects.dicom_path(earlier["owner"], earlier["id"], index))
            if data is None:
                raise NotFound("image_missing", name=f"DICOM file of slice {index}")
            return data

        return read

    upload = Upload([Member(f"{index:05d}.dcm", reader(index)) for index in range(earlier["slice_count"])])
    limits = StudyLimits.from_config(current_app.config)
    doc = create_study(
        stores,
        get_queue(),
        get_classifier(),
        earlier["owner"],
        upload,
        filename=earlier["filename"],
        window=earlier["parameters"]["window"],
        limits=limits,
        reanalysis_of=earlier["id"],
    )
    return _accepted(doc)


def _accepted(doc: dict):
    return jsonify(public(doc)), 202, {"Location": url_for("studies.get_study", study_id=doc["id"])}


def _stored(study_id: str) -> dict:
    doc = get_store().get_study(study_id, owner=owner_scope(authenticate()))
    if doc is None:
        raise _not_found(study_id)
    return doc


def _not_found(study_id: str):
    return NotFound("not_found", f"There is no study with id '{study_id}'.")
