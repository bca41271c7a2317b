"""Accounts: AUTH_MODE=none (one local owner, loopback only, no cross-site changes) and
AUTH_MODE=firebase (ID tokens verified by the Admin SDK against the real Auth emulator)."""
import base64
import io
import json
import os
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.app import create_app
from backend.config import ConfigError
from tests.fixtures.data import REPO, dicom_file
from tests.fixtures.server import free_port

SLICE = "693_UNCR.dcm"


def post_slice(client, token=None, key=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/analyze", data={"file": (io.BytesIO(dicom_file(SLICE).read_bytes()), SLICE)}, headers=headers)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def altered(token: str, **claims) -> str:
    """The token with some payload claims replaced, header and signature left as they were."""
    header, payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    payload = base64.urlsafe_b64encode(json.dumps({**fields, **claims}).encode()).decode().rstrip("=")
    return f"{header}.{payload}.{signature}"


def assert_401(response, code):
    assert response.status_code == 401, response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"] == code and response.get_json()["message"]


# --- AUTH_MODE=none ----------------------------------------------------------------------------


def test_none_is_the_default_and_needs_no_token(client):
    created = post_slice(client)
    assert created.status_code == 201
    assert [d["id"] for d in client.get("/analyses").get_json()["items"]] == [created.get_json()["id"]]
    assert client.get("/auth/config").get_json() == {"mode": "none"}


def test_cross_site_changes_are_refused_and_nothing_is_stored(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "CORS_ORIGINS": ["https://dashboard.example.org"], "TESTING": True})
    client = app.test_client()
    refused = post_slice(client, Origin="https://evil.example")
    assert refused.status_code == 403 and refused.get_json()["error"] == "cross_origin_refused"
    assert client.get("/analyses").get_json()["items"] == []

    # The page's own origin and configured CORS origins may; so may curl, which sends no Origin.
    own = post_slice(client, Origin="http://localhost").get_json()["id"]
    post_slice(client, Origin="https://dashboard.example.org")
    post_slice(client)
    assert len(client.get("/analyses").get_json()["items"]) == 3
    # A cross-site DELETE is refused too; reading is left to the browser's same-origin policy.
    assert client.delete(f"/analyses/{own}", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.get(f"/analyses/{own}", headers={"Origin": "https://evil.example"}).status_code == 200
    assert client.delete(f"/analyses/{own}", headers={"Origin": "http://localhost"}).status_code == 204


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "ct.example.org"])
def test_none_refuses_a_non_loopback_host_unless_anonymous_is_allowed(tmp_path, host):
    with pytest.raises(ConfigError, match="ALLOW_ANONYMOUS=1"):
        create_app({"DATA_DIR": str(tmp_path), "HOST": host})
    assert create_app({"DATA_DIR": str(tmp_path), "HOST": host, "ALLOW_ANONYMOUS": True}).config["HOST"] == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_none_serves_loopback_hosts(tmp_path, host):
    create_app({"DATA_DIR": str(tmp_path), "HOST": host})


@pytest.mark.parametrize("name, value, message", [
    ("AUTH_MODE", "oauth", "AUTH_MODE"), ("RATE_LIMIT", "lots", "RATE_LIMIT"), ("ALLOW_ANONYMOUS", "maybe", "ALLOW_ANONYMOUS")])
def test_unusable_settings_are_refused(tmp_path, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app({"DATA_DIR": str(tmp_path)})


def test_rate_limit_per_owner_answers_429_with_retry_after(tmp_path):
    client = create_app({"DATA_DIR": str(tmp_path), "RATE_LIMIT": "2/minute", "TESTING": True}).test_client()
    assert [post_slice(client).status_code for _ in range(2)] == [201, 201]
    limited = post_slice(client)
    assert limited.status_code == 429 and limited.get_json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert len(client.get("/analyses").get_json()["items"]) == 2


def test_the_one_local_user_is_not_limited_by_default(tmp_path, monkeypatch):
    """AUTH_MODE=none: a loop over a folder of slices is not stopped at the 61st (the default limit is for accounts)."""
    monkeypatch.delenv("RATE_LIMIT", raising=False)
    client = create_app({"DATA_DIR": str(tmp_path), "TESTING": True}).test_client()
    answers = {client.post("/analyze", data={}).status_code for _ in range(70)}  # counted before the form is read
    assert answers == {400}


# --- AUTH_MODE=firebase, on the Auth emulator ----------------------------------------------------


@pytest.fixture
def firebase_app(auth_env, tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "TESTING": True})
    yield app
    app.extensions["auth"].close()


@pytest.fixture
def api(firebase_app):
    return firebase_app.test_client()


def test_every_analyses_route_needs_a_token_and_health_stays_open(api):
    for method, path in [("POST", "/analyze"), ("GET", "/analyses"), ("GET", "/analyses/abc"), ("DELETE", "/analyses/abc")]:
        response = api.open(path, method=method)
        assert_401(response, "sign_in_required")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    health = api.get("/health")
    assert health.status_code == 200 and set(health.get_json()) == {"status", "store", "model"}


def test_the_dashboard_gets_the_web_config(api, auth_env):
    assert api.get("/auth/config").get_json() == {
        "mode": "firebase", "emulator": f"http://{auth_env.host}", "google_sign_in": False,
        "firebase": {"apiKey": "demo-api-key", "authDomain": "demo-ct-analysis-test.firebaseapp.com",
                     "projectId": "demo-ct-analysis-test"}}
    csp = api.get("/").headers["Content-Security-Policy"]
    assert f"connect-src 'self' http://{auth_env.host}" in csp and "unsafe" not in csp


def test_a_signed_in_user_can_analyse_and_list(api, auth_env):
    alice = auth_env.sign_up("alice@example.com")
    created = post_slice(api, alice.id_token)
    assert created.status_code == 201
    listed = api.get("/analyses", headers=bearer(alice.id_token)).get_json()["items"]
    assert [d["id"] for d in listed] == [created.get_json()["id"]]


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token abc"])
def test_malformed_authorization_headers(api, header):
    assert_401(api.get("/analyses", headers={"Authorization": header}), "sign_in_required")


def test_garbage_tokens(api):
    for token in ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."]:
        assert_401(api.get("/analyses", headers=bearer(token)), "invalid_token")


def test_a_token_of_another_project_is_refused(api, auth_env):
    alice = auth_env.sign_up("alice@example.com")
    other = "demo-another-project"
    token = altered(alice.id_token, aud=other, iss=f"https://securetoken.google.com/{other}")
    assert_401(api.get("/analyses", headers=bearer(token)), "invalid_token")
    assert_401(post_slice(api, token), "invalid_token")


def test_an_expired_token_is_refused(api, auth_env):
    alice = auth_env.sign_up("alice@example.com")
    # Only `exp` moves into the past: the issue time stays after the account's creation, so the
    # revocation check alone would let it through.
    token = altered(alice.id_token, exp=int(time.time()) - 60)
    assert_401(api.get("/analyses", headers=bearer(token)), "token_expired")


def test_a_disabled_user_is_refused(api, auth_env):
    alice = auth_env.sign_up("alice@example.com")
    assert api.get("/analyses", headers=bearer(alice.id_token)).status_code == 200
    auth_env.update(alice.uid, disableUser=True)
    assert_401(api.get("/analyses", headers=bearer(alice.id_token)), "user_disabled")


def test_a_deleted_user_is_refused(api, auth_env):
    alice = auth_env.sign_up("alice@example.com")
    auth_env.clear()
    assert_401(api.get("/analyses", headers=bearer(alice.id_token)), "invalid_token")


def service_account_key(path, project):
    """A service-account key file of the form the Firebase console gives, with a key made here."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": "test-key", "private_key": pem.decode(),
        "client_email": f"ct-analysis@{project}.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"}))
    return str(path)


def test_tampered_tokens_are_refused_by_the_signature_check(auth_env, tmp_path, monkeypatch):
    """Outside the emulator the SDK checks Google's signature: a token whose payload was altered fails.

    The emulator's tokens are unsigned, so they stand for a token whose signature no longer
    matches; a verifier that skipped the signature would accept this one as Bob's.
    """
    alice, bob = auth_env.sign_up("alice@example.com"), auth_env.sign_up("bob@example.com")
    project = "ct-analysis-production"
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST")
    monkeypatch.setenv("FIREBASE_PROJECT_ID", project)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", service_account_key(tmp_path / "key.json", project))
    app = create_app({"DATA_DIR": str(tmp_path), "AUTH_CHECK_REVOKED": False})
    try:
        token = altered(alice.id_token, sub=bob.uid, user_id=bob.uid, aud=project,
                        iss=f"https://securetoken.google.com/{project}")
        assert_401(app.test_client().get("/analyses", headers=bearer(token)), "invalid_token")
    finally:
        app.extensions["auth"].close()


def test_the_emulator_is_refused_for_a_project_that_is_not_demo(auth_env, monkeypatch, tmp_path):
    monkeypatch.setenv("FIREBASE_PROJECT_ID", "ct-analysis-production")
    with pytest.raises(ConfigError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        create_app({"DATA_DIR": str(tmp_path)})


def test_firebase_mode_needs_a_project_an_api_key_and_a_credential(auth_env, monkeypatch, tmp_path):
    monkeypatch.delenv("FIREBASE_API_KEY")
    with pytest.raises(ConfigError, match="FIREBASE_API_KEY"):
        create_app({"DATA_DIR": str(tmp_path)})
    monkeypatch.delenv("FIREBASE_PROJECT_ID")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with pytest.raises(ConfigError, match="FIREBASE_PROJECT_ID"):
        create_app({"DATA_DIR": str(tmp_path)})
    # Outside the emulator, a Google credential must be found at start, not at the first request.
    for name in ("FIREBASE_AUTH_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "FIREBASE_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIREBASE_PROJECT_ID", "ct-analysis-production")
    monkeypatch.setenv("FIREBASE_API_KEY", "key")
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud user credential either
    with pytest.raises(ConfigError, match="credential"):
        create_app({"DATA_DIR": str(tmp_path)})


# --- Ownership ------------------------------------------------------------------------------------


def ids(response):
    assert response.status_code == 200, response.get_json()
    return [doc["id"] for doc in response.get_json()["items"]]


def test_each_user_sees_only_their_own_analyses(api, auth_env):
    alice, bob = auth_env.sign_up("alice@example.com"), auth_env.sign_up("bob@example.com")
    mine = [post_slice(api, alice.id_token).get_json() for _ in range(3)]
    theirs = post_slice(api, bob.id_token).get_json()
    assert {doc["owner"] for doc in mine} == {alice.uid} and theirs["owner"] == bob.uid

    # Alice's listing, paged by cursor, is hers alone, newest first.
    seen, cursor = [], None
    while True:
        page = api.get("/analyses", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                       headers=bearer(alice.id_token)).get_json()
        seen += [doc["id"] for doc in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [doc["id"] for doc in reversed(mine)]
    assert ids(api.get("/analyses", headers=bearer(bob.id_token))) == [theirs["id"]]

    # Someone else's id answers exactly as an id that does not exist.
    unknown = api.get("/analyses/0123456789abcdef", headers=bearer(bob.id_token))
    foreign = api.get(f"/analyses/{mine[0]['id']}", headers=bearer(bob.id_token))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.get_json()["error"] == unknown.get_json()["error"] == "not_found"
    assert api.delete(f"/analyses/{mine[0]['id']}", headers=bearer(bob.id_token)).status_code == 404
    assert api.get(f"/analyses/{mine[0]['id']}", headers=bearer(alice.id_token)).status_code == 200
    assert api.delete(f"/analyses/{mine[0]['id']}", headers=bearer(alice.id_token)).status_code == 204


def test_an_admin_lists_reads_and_deletes_everyones(api, auth_env):
    alice, bob, carol = (auth_env.sign_up(f"{name}@example.com") for name in ("alice", "bob", "carol"))
    a = post_slice(api, alice.id_token).get_json()["id"]
    b = post_slice(api, bob.id_token).get_json()["id"]
    refused = api.get("/analyses?owner=all", headers=bearer(alice.id_token))
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"

    auth_env.update(carol.uid, customAttributes=json.dumps({"admin": True}))
    admin = auth_env.sign_in("carol@example.com")  # a new token carries the new claim
    assert ids(api.get("/analyses", headers=bearer(admin))) == []  # without ?owner=all: their own
    assert ids(api.get("/analyses?owner=all", headers=bearer(admin))) == [b, a]
    assert api.get(f"/analyses/{a}", headers=bearer(admin)).get_json()["owner"] == alice.uid
    assert api.delete(f"/analyses/{b}", headers=bearer(admin)).status_code == 204
    assert ids(api.get("/analyses", headers=bearer(bob.id_token))) == []


def test_idempotency_keys_are_scoped_per_user(api, auth_env):
    alice, bob = auth_env.sign_up("alice@example.com"), auth_env.sign_up("bob@example.com")
    first = post_slice(api, alice.id_token, key="upload-1")
    retry = post_slice(api, alice.id_token, key="upload-1")
    other = post_slice(api, bob.id_token, key="upload-1")
    assert first.status_code == retry.status_code == other.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true" and retry.get_json()["id"] == first.get_json()["id"]
    assert "Idempotent-Replayed" not in other.headers
    assert other.get_json()["id"] != first.get_json()["id"] and other.get_json()["owner"] == bob.uid
    assert ids(api.get("/analyses", headers=bearer(bob.id_token))) == [other.get_json()["id"]]


def test_the_rate_limit_counts_per_user(auth_env, tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "RATE_LIMIT": "2/minute", "TESTING": True})
    try:
        api = app.test_client()
        alice, bob = auth_env.sign_up("alice@example.com"), auth_env.sign_up("bob@example.com")
        assert [post_slice(api, alice.id_token).status_code for _ in range(3)] == [201, 201, 429]
        assert post_slice(api, bob.id_token).status_code == 201
        # An unauthenticated flood is answered 401 and counts against nobody.
        assert post_slice(api).status_code == 401
    finally:
        app.extensions["auth"].close()


NO_GOOGLE_CREDENTIAL = {"FIREBASE_CREDENTIALS": "", "GOOGLE_APPLICATION_CREDENTIALS": "", "FIRESTORE_EMULATOR_HOST": "",
                        "STORAGE_EMULATOR_HOST": "", "HOME": "/nonexistent", "NO_GCE_CHECK": "True"}


@pytest.mark.parametrize("env, words", [
    ({"HOST": "0.0.0.0"}, "ALLOW_ANONYMOUS=1"),
    ({"AUTH_MODE": "firebase", "FIREBASE_PROJECT_ID": "ct-analysis-production", "FIREBASE_API_KEY": "key",
      "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"}, "demo-"),
    ({"HEAVY_WORK_WAIT_S": "soon"}, "HEAVY_WORK_WAIT_S='soon' is not a number"),
    # Production stores on a machine with no Google credential at all (no key, no gcloud login, not on GCE)
    ({"STORE": "firestore", **NO_GOOGLE_CREDENTIAL}, "STORE=firestore found no Google credential"),
    ({"IMAGE_STORE": "gcs", "STORAGE_BUCKET": "b", **NO_GOOGLE_CREDENTIAL}, "IMAGE_STORE=gcs found no Google credential"),
])
def test_the_service_refuses_to_start_in_one_line(tmp_path, env, words):
    """`python backend/app.py` as users start it: one clear line and exit code 1, before listening."""
    started = subprocess.run([sys.executable, "backend/app.py"], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "DATA_DIR": str(tmp_path), "PORT": str(free_port()), **env})
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], started.stderr


@pytest.mark.parametrize("google, script_src, frame_src", [
    ("0", "script-src 'self';", "frame-src 'none';"),
    ("1", "script-src 'self' https://apis.google.com;", "frame-src https://ct-analysis-production.firebaseapp.com;"),
])
def test_the_csp_allows_only_firebase_auth_in_production(tmp_path, monkeypatch, google, script_src, frame_src):
    project = "ct-analysis-production"
    for name in ("FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AUTH_MODE": "firebase", "FIREBASE_PROJECT_ID": project, "FIREBASE_API_KEY": "key",
                        "FIREBASE_GOOGLE_SIGN_IN": google,
                        "GOOGLE_APPLICATION_CREDENTIALS": service_account_key(tmp_path / "key.json", project)}.items():
        monkeypatch.setenv(name, value)
    app = create_app({"DATA_DIR": str(tmp_path)})
    try:
        csp = app.test_client().get("/").headers["Content-Security-Policy"] + ";"
        assert "connect-src 'self' https://identitytoolkit.googleapis.com https://securetoken.googleapis.com;" in csp
        assert script_src in csp and frame_src in csp and "unsafe" not in csp
        assert app.test_client().get("/auth/config").get_json()["google_sign_in"] is (google == "1")
    finally:
        app.extensions["auth"].close()


def test_studies_follow_the_owner_rule_of_analyses(api, auth_env):
    """A study belongs to who uploaded it: every study route needs a token, another user's id answers 404 as an
    unknown one does (its slices and its re-analysis too), an administrator reads and deletes it."""
    from tests.fixtures.data import ct_series_files
    from tests.fixtures.series import files_form

    for method, path in [("POST", "/studies"), ("GET", "/studies"), ("GET", "/studies/abc"),
                         ("DELETE", "/studies/abc"), ("GET", "/studies/abc/slices/0/slice.jpg")]:
        assert_401(api.open(path, method=method), "sign_in_required")
    alice, bob = auth_env.sign_up("alice@example.com"), auth_env.sign_up("bob@example.com")
    slices = {path.name: path.read_bytes() for path in ct_series_files()[14:16]}
    study = api.post("/studies", data=files_form(slices), headers=bearer(alice.id_token))
    assert study.status_code == 202 and study.get_json()["owner"] == alice.uid
    study_id = study.get_json()["id"]
    deadline = time.monotonic() + 120
    while api.get(f"/studies/{study_id}", headers=bearer(alice.id_token)).get_json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for method, path in [("GET", f"/studies/{study_id}"), ("GET", f"/studies/{study_id}/slices/0/slice.jpg"),
                         ("POST", f"/studies/{study_id}/reanalyze"), ("DELETE", f"/studies/{study_id}")]:
        foreign = api.open(path, method=method, headers=bearer(bob.id_token))
        assert (foreign.status_code, foreign.get_json()["error"]) == (404, "not_found"), path
    assert api.get("/studies", headers=bearer(bob.id_token)).get_json()["items"] == []
    assert ids(api.get("/studies", headers=bearer(alice.id_token))) == [study_id]
    assert api.get(f"/studies/{study_id}/slices/1/heatmap.jpg", headers=bearer(alice.id_token)).status_code == 200

    carol = auth_env.sign_up("carol@example.com")
    auth_env.update(carol.uid, customAttributes=json.dumps({"admin": True}))
    admin = auth_env.sign_in("carol@example.com")
    assert ids(api.get("/studies?owner=all", headers=bearer(admin))) == [study_id]
    assert api.delete(f"/studies/{study_id}", headers=bearer(admin)).status_code == 204
    assert api.get(f"/studies/{study_id}", headers=bearer(alice.id_token)).status_code == 404
