"""Every error a client can be answered with: its code, HTTP status and message, in one catalogue.

Code below the web layer (imaging, stores, image stores, auth, analysis) raises a typed
`ServiceError` that names a catalogue code and knows nothing of HTTP; `backend.api.errors` turns
every one into the JSON answer `{"error": code, "message": sentence}` in one handler. The README's
error table and the OpenAPI description's error responses are made from CATALOGUE (a test checks
both), so a new code cannot be forgotten in either.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    status: int  # the HTTP status it is answered with
    message: str  # the sentence the client reads; {fields} are filled from the error's params
    when: str  # when a client gets it (the README's table, the OpenAPI description)


CATALOGUE = {
    # Reading the request
    "bad_request": Code(400, "The request could not be read.", "the HTTP request itself cannot be parsed"),
    "missing_file": Code(400, "Send the image in a multipart form field named 'file'.",
                         "a multipart upload without a `file` part"),
    "missing_image": Code(400, 'Send JSON like {{"image": "data:image/png;base64,...", "filename": "slice.png"}}: '
                               "the image as a data URL or base64.", "a JSON upload without a non-empty `image` string"),
    "invalid_json": Code(400, "The body is not valid JSON (or is nested too deeply).", "a JSON body that does not parse"),
    "invalid_field": Code(400, "'{field}' must be {expected}.", "a JSON field of the wrong type"),
    "invalid_base64": Code(400, "The image is not valid base64.", "the JSON `image` is not base64"),
    "invalid_data_url": Code(400, "The data URL must be base64-encoded, like data:image/png;base64,...",
                             "the JSON `image` is a data URL that is not base64"),
    "empty_file": Code(400, "The uploaded file is empty.", "a file of 0 bytes"),
    "too_many_form_fields": Code(400, "The form has more fields than this service reads: send 'file' and, if "
                                      "needed, 'window' and 'frame'.", "a form with more than 16 parts"),
    "invalid_window": Code(400, "Unknown window; use one of: lung, mediastinal, bone, dicom.",
                           "a `window` other than `lung`, `mediastinal`, `bone`, `dicom`"),
    "invalid_frame": Code(400, "'frame' must be a whole number from 0 to the image's last frame (a PNG or JPEG "
                               "has one frame, 0).", "a `frame` that is not a whole number or not in the file"),
    "invalid_idempotency_key": Code(400, "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
                                    "an `Idempotency-Key` header that is empty, too long or not printable ASCII"),
    "invalid_limit": Code(400, "limit must be a whole number from 1 to {maximum}.", "a `limit` outside 1 to 100"),
    "invalid_cursor": Code(400, "The cursor is not one this service issued; start again without it.",
                           "a `cursor` the service did not issue"),
    "invalid_owner": Code(400, "owner may only be 'all' (everyone's analyses, for administrators).",
                          "an `owner` other than `all`"),
    # The image
    "corrupt_image": Code(400, "The image could not be decoded: it is truncated or damaged.",
                          "a truncated or damaged PNG or JPEG (a bad CRC, a stream that ends early)"),
    "invalid_dicom": Code(400, "The file looks like DICOM but could not be read.",
                          "a DICOM file whose data set or pixel data cannot be parsed"),
    "no_pixel_data": Code(400, "The DICOM file holds no image (it has no Pixel Data element).",
                          "a DICOM file without pixel data (a report, a structured document)"),
    "invalid_dicom_header": Code(400, "The DICOM header does not describe its pixels in a way this service can "
                                      "use.", "DICOM header values that are not numbers, not finite, zero "
                                              "(`RescaleSlope`), not positive (`WindowWidth` with `window=dicom`) "
                                              "or that disagree with the pixel data"),
    "undecodable_dicom": Code(400, "The DICOM pixel data could not be decoded.",
                              "compressed DICOM pixel data that its decoder refuses"),
    "request_entity_too_large": Code(413, "The upload is larger than this service accepts (MAX_UPLOAD_MB).",
                                     "a body over `MAX_UPLOAD_MB`"),
    "too_many_pixels": Code(413, "The image has more pixels than this service accepts (MAX_PIXELS).",
                            "more pixels than `MAX_PIXELS`, read from the header before decoding"),
    "decoded_too_large": Code(413, "The decoded image would take more memory than this service allows "
                                   "(DECODE_BUDGET_MB).", "a decoded size (estimated from the header, or a deflated "
                                                          "DICOM's inflated size) over `DECODE_BUDGET_MB`"),
    "unsupported_format": Code(415, "The file is not a PNG, JPEG or DICOM image.", "not PNG, JPEG or DICOM"),
    "unsupported_transfer_syntax": Code(415, "The DICOM pixel encoding is not one this service can decode.",
                                        "a DICOM pixel encoding no installed decoder reads (the message names it)"),
    "image_too_small": Code(422, "Each side of the image must be at least {minimum} pixels.", "a side under 24 px"),
    "blank_image": Code(422, "The image has no content: every pixel has the same value (for DICOM, another "
                             "window may show it).", "one value everywhere (for DICOM, after windowing)"),
    "idempotency_key_reused": Code(422, "This Idempotency-Key was already used for a different request (another "
                                        "file, window, frame or file name).",
                                   "an `Idempotency-Key` already used for another request"),
    # Studies: a series of DICOM slices (POST /studies)
    "invalid_archive": Code(400, "The ZIP archive could not be read: it is truncated, damaged or encrypted.",
                            "a `file` that starts like a ZIP but cannot be read as one"),
    "invalid_series_uid": Code(400, "'series_uid' must be a DICOM UID of at most 64 characters.",
                               "a `series_uid` that is empty or longer than 64 characters"),
    "too_many_slices": Code(413, "The study has more slices than this service analyses at once (at most {maximum}, "
                                 "STUDY_MAX_SLICES).", "more DICOM files in the upload than `STUDY_MAX_SLICES`"),
    "study_too_large": Code(413, "The study is larger than this service accepts (at most {maximum} MiB, "
                                 "STUDY_MAX_UPLOAD_MB).", "an upload, or a ZIP's contents (declared or as it "
                                                          "inflates), over `STUDY_MAX_UPLOAD_MB`"),
    "no_dicom": Code(422, "The upload holds no DICOM image to analyse.",
                     "a study upload (ZIP or files) in which no file is a DICOM image"),
    "unknown_series": Code(422, "The upload holds no series with that series_uid.",
                           "a `series_uid` that none of the uploaded files has"),
    "not_ct": Code(422, "Only CT series can be analysed.", "the requested series, or every series, is not CT"),
    "mixed_slice_sizes": Code(422, "The series' slices do not all have the same size, so they are not one "
                                   "volume.", "slices of one series with different Rows or Columns"),
    "unordered_series": Code(422, "The slices cannot be put in order: they have neither ImagePositionPatient with "
                                  "ImageOrientationPatient, nor SliceLocation, nor InstanceNumber in common.",
                             "a series whose slices share no position, location or instance number"),
    "no_decodable_slice": Code(422, "None of the series' slices could be decoded.",
                               "a study (shown `failed`) none of whose slices decodes"),
    "study_interrupted": Code(500, "The analysis of this study stopped {attempts} times before it finished (the "
                                   "process analysing it ended); it was given up.",
                              "a study (shown `failed`) whose worker process died `STUDY_MAX_ATTEMPTS` times"),
    "study_failed": Code(500, "The analysis of this study failed; it has been logged.",
                         "a study (shown `failed`) whose analysis met an unexpected error"),
    "study_not_done": Code(409, "This study is not analysed yet (status {status}); its slice images appear when it "
                                "is done.", "a slice image of a study that is still queued or running, or failed"),
    "studies_need_image_store": Code(501, "Studies need kept objects: this service runs with IMAGE_STORE=none.",
                                     "`POST /studies` with `IMAGE_STORE=none`"),
    "queue_unavailable": Code(503, "The study queue is not reachable right now; nothing was saved. Try again "
                                   "shortly.", "`STUDY_QUEUE=pubsub` and Pub/Sub did not take the study "
                                              "(nothing kept)"),
    # Who is calling
    "sign_in_required": Code(401, "Sign in first: send the header 'Authorization: Bearer' followed by a Firebase "
                                  "ID token.", "`AUTH_MODE=firebase` and no Bearer token"),
    "invalid_token": Code(401, "The ID token is not a valid Firebase ID token for this service.",
                          "a token that is malformed, of another project, or whose user does not exist"),
    "token_expired": Code(401, "The ID token has expired; get a fresh one and try again.", "an expired token"),
    "token_revoked": Code(401, "The ID token was revoked; sign in again.",
                          "a revoked session (`AUTH_CHECK_REVOKED=1`)"),
    "user_disabled": Code(401, "This account is disabled.", "a disabled user (`AUTH_CHECK_REVOKED=1`)"),
    "cross_origin_refused": Code(403, "This service does not accept changes sent by pages of other sites (add the "
                                      "site to CORS_ORIGINS to allow it).",
                                 "`AUTH_MODE=none`: a `POST` or `DELETE` whose `Origin` is another site"),
    "forbidden": Code(403, "Only administrators may list everyone's analyses.", "`owner=all` without the admin claim"),
    "rate_limited": Code(429, "Too many analyses: at most {limit} for each account. Try again in {retry_after} s.",
                         "over `RATE_LIMIT` for this owner (with `Retry-After`)"),
    # What is asked for
    "not_found": Code(404, "There is nothing at this address.",
                      "no such route, or no analysis or study of the caller's with this id (or slice index)"),
    "image_missing": Code(404, "This analysis has no stored {name} (it was made before images were kept, or the "
                               "object is gone); its thumbnails remain.",
                          "an image of an analysis made before images were kept (or whose object is gone)"),
    "method_not_allowed": Code(405, "This address does not accept that HTTP method.",
                               "a method the route does not take (with `Allow`)"),
    "request_header_fields_too_large": Code(431, "The request's headers are larger than this service accepts.",
                                            "headers over 64 KiB"),
    # The service
    "internal_error": Code(500, "The service failed to handle this request; it has been logged.",
                           "an unexpected failure, logged with the request id"),
    "busy": Code(503, "The service is analysing as many slices as it can; try again in a few seconds.",
                 "no analysis slot within `HEAVY_WORK_WAIT_S` (with `Retry-After`)"),
    "store_unavailable": Code(503, "The database is not reachable right now; nothing was saved. Try again shortly.",
                              "the document store did not answer within `STORE_TIMEOUT_S` (nothing written)"),
    "image_store_unavailable": Code(503, "The image store is not reachable right now; nothing was changed. Try "
                                         "again shortly.", "the image store did not answer within `STORE_TIMEOUT_S` "
                                                           "(nothing written, nothing deleted)"),
    "auth_unavailable": Code(503, "Sign-in can't be checked right now; try again shortly.",
                             "Firebase Authentication or Google's keys are unreachable"),
    "not_ready": Code(503, "Not ready: {reasons}.", "`GET /ready`: the model, the store or the image store is not "
                                                   "ready (`not_ready` names which)"),
}


class ServiceError(Exception):
    """An error meant for the client, named by its catalogue code.

    `params` fill the code's message; `detail` adds one sentence of specifics (a file's frame count, a
    header's name); `headers` are protocol hints the web layer sends along (Retry-After, WWW-Authenticate);
    `extra` are further JSON fields of the answer.
    """

    def __init__(self, code: str, detail: str = "", *, headers: dict | None = None, extra: dict | None = None,
                 **params):
        entry = CATALOGUE[code]
        self.code, self.status = code, entry.status
        self.message = entry.message.format(**params) + (f" {detail}" if detail else "")
        self.headers, self.extra = headers or {}, extra or {}
        super().__init__(self.message)


class InvalidInput(ServiceError):
    """What the client sent cannot be analysed (the request, the image): a 4xx, nothing stored."""


class NotAllowed(ServiceError):
    """The caller may not make this call (not signed in, another site, not an administrator, over its limit)."""


class NotFound(ServiceError):
    """What the caller asked for is not there, or not the caller's."""


class Unavailable(ServiceError):
    """Something the service depends on cannot answer now; `cause` says what, for the log (never the client)."""

    def __init__(self, code: str, *, cause: str = "", **kwargs):
        super().__init__(code, **kwargs)
        self.cause = cause

    def __str__(self):
        return self.cause or self.message


class StoreUnavailable(Unavailable):
    """The document store did not answer in time."""

    def __init__(self, cause: str = "", store: str = "store"):
        super().__init__("store_unavailable", cause=cause)
        self.store = store  # which backend, for the store_errors_total metric


class ImageStoreUnavailable(Unavailable):
    """The image store did not answer in time."""

    def __init__(self, cause: str = "", store: str = "images"):
        super().__init__("image_store_unavailable", cause=cause)
        self.store = store


def markdown_table() -> str:
    """The README's error table: every code, by status."""
    rows = ["| status | code | when |", "| --- | --- | --- |"]
    for code, entry in sorted(CATALOGUE.items(), key=lambda item: item[1].status):
        rows.append(f"| {entry.status} | `{code}` | {entry.when} |")
    return "\n".join(rows)
