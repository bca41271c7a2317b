"""STOW-RS (PS3.18 10.5): POST /dicomweb/studies and /dicomweb/studies/<study_uid> take CT instances as
`multipart/related; type="application/dicom"`, authenticated like every API call. Each series received becomes
a study of the caller's, exactly as POST /studies makes one (backend/studies/create.py); their ids are in the
`X-Study-ID` header, and `GET /studies?study_uid=` finds them. The body and the Store Instances Response are
backend/dicom/dicomweb.py's: 200 when every instance was taken, 202 when some were, 409 when none was, each
refused instance with its Failure Reason. It works whether or not DICOM_PORT is set.
"""

import json

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from backend import ratelimit
from backend.analysis.record import Stores
from backend.api.studies import FORM_OVERHEAD
from backend.auth import authenticate
from backend.dicom import dicomweb
from backend.errors import InvalidInput
from backend.imaging.archive import StudyLimits
from backend.ml.classifier import get_classifier
from backend.studies import get_queue
from backend.studies.create import create_received

bp = Blueprint("dicomweb", __name__)


@bp.post("/dicomweb/studies")
@bp.post("/dicomweb/studies/<study_uid>")
def store_instances(study_uid=None):
    caller = authenticate()
    ratelimit.check(caller)
    limits = StudyLimits.from_config(current_app.config)
    files = dicomweb.parts(request.content_type, _body(limits))
    if len(files) > limits.max_slices:
        raise InvalidInput("too_many_slices", maximum=limits.max_slices)
    accepted, outcomes = dicomweb.check(files, study_uid)
    series = {}
    for instance in accepted:
        series.setdefault(instance.series_uid, []).append(instance)
    ids = []
    for instances in series.values():
        received = [(f"{n:05d}.dcm", lambda data=instance.data: data) for n, instance in enumerate(instances)]
        try:
            doc = create_received(
                Stores.of(current_app),
                get_queue(),
                get_classifier(),
                caller.uid,
                received,
                source={"protocol": "STOW-RS"},
                limits=limits,
            )
            ids.append(doc["id"])
            failure = None
        except InvalidInput as exc:  # not a series this service can analyse (mixed sizes, no order)
            current_app.logger.info("STOW-RS series %s is no study: %s", instances[0].series_uid, exc)
            failure = dicomweb.PROCESSING_FAILURE
        outcomes += [dicomweb.Outcome(i.sop_class_uid, i.sop_instance_uid, failure) for i in instances]
    status, answer = dicomweb.response(outcomes)
    return Response(
        json.dumps(answer),
        status,
        mimetype="application/dicom+json",
        headers={"X-Study-ID": ",".join(ids)} if ids else {},
    )


def _body(limits: StudyLimits) -> bytes:
    """The request body, within a study's upload limit (STUDY_MAX_UPLOAD_MB) rather than a single slice's."""
    if (request.content_length or 0) > limits.max_bytes + FORM_OVERHEAD:
        raise limits.too_large()
    request.max_content_length = limits.max_bytes + FORM_OVERHEAD
    try:
        return request.get_data(cache=False)
    except RequestEntityTooLarge as exc:  # a body without Content-Length that grew past the limit
        raise limits.too_large() from exc
