"""AUTH_MODE=firebase: every API call carries a Firebase ID token, verified by the Admin SDK.

`firebase_admin.auth.verify_id_token` checks the signature against Google's published keys,
the audience (this project), the issuer and the expiry; with `check_revoked` it also asks
Firebase Authentication whether the user was disabled or signed out everywhere since.

The Auth emulator (FIREBASE_AUTH_EMULATOR_HOST) issues unsigned tokens that the SDK accepts
without a signature check, so it is honoured only for `demo-` projects, which have no real users.
"""
import time
import uuid

import firebase_admin
from firebase_admin import auth

from backend.auth.base import AuthMode, User, unauthorized
from backend.config import ConfigError, check_key_file, google_credentials
from backend.errors import Unavailable
from backend.store.firebase_app import choose_credential

# Where the JS SDK signs in and refreshes tokens (connect-src), and what Google's popup sign-in loads.
AUTH_ENDPOINTS = ["https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"]
GOOGLE_SIGN_IN_SCRIPTS = ["https://apis.google.com"]


def check_emulator_allowed(project: str, emulator: str | None):
    """Refuse the emulator's unsigned tokens for any project that could have real users."""
    if emulator and not project.startswith("demo-"):
        raise ConfigError(
            f"FIREBASE_AUTH_EMULATOR_HOST={emulator} is set, but the project {project!r} does not start with 'demo-': "
            "the emulator's unsigned tokens are never trusted for a real project; unset it or use a demo- project id")
    return emulator


def check_settings(config):
    """ConfigError for settings AUTH_MODE=firebase cannot work with, found from the settings alone (gunicorn's
    master runs this before it starts workers)."""
    if not config["GOOGLE_CLOUD_PROJECT"]:
        raise ConfigError("AUTH_MODE=firebase needs the Firebase project id: set FIREBASE_PROJECT_ID")
    if not config["FIREBASE_API_KEY"]:
        raise ConfigError("AUTH_MODE=firebase needs FIREBASE_API_KEY, the web API key of the Firebase "
                          "project (console: Project settings, General), for the dashboard's sign-in")
    check_emulator_allowed(config["GOOGLE_CLOUD_PROJECT"], config["FIREBASE_AUTH_EMULATOR_HOST"])
    check_key_file(config["GOOGLE_APPLICATION_CREDENTIALS"])


class FirebaseAuth(AuthMode):
    name = "firebase"

    def __init__(self, project, api_key, auth_domain=None, credentials_path=None, check_revoked=True,
                 google_sign_in=False, emulator_host=None):
        self.emulator = check_emulator_allowed(project, emulator_host)  # here too: it guards the tokens' check
        self.project = project
        self.api_key = api_key
        self.auth_domain = auth_domain or f"{project}.firebaseapp.com"
        self.check_revoked = check_revoked
        self.google_sign_in = google_sign_in
        with google_credentials("AUTH_MODE=firebase"):
            credential = choose_credential(credentials_path, self.emulator)
            if not self.emulator:
                credential.get_credential()  # found now: the Admin SDK would otherwise fail on the first request
        self.app = firebase_admin.initialize_app(credential, {"projectId": project}, name=f"auth-{uuid.uuid4().hex}")

    @classmethod
    def from_config(cls, config):
        return cls(project=config["GOOGLE_CLOUD_PROJECT"], api_key=config["FIREBASE_API_KEY"],
                   auth_domain=config["FIREBASE_AUTH_DOMAIN"], credentials_path=config["GOOGLE_APPLICATION_CREDENTIALS"],
                   check_revoked=config["AUTH_CHECK_REVOKED"], google_sign_in=config["FIREBASE_GOOGLE_SIGN_IN"],
                   # the Admin SDK reads it from the environment too; the settings read the same variable
                   emulator_host=config["FIREBASE_AUTH_EMULATOR_HOST"])

    def authenticate(self, request) -> User:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("sign_in_required", error=None)
        claims = self._verify(token.strip())
        return User(uid=claims["uid"], admin=claims.get("admin") is True)

    def _verify(self, token: str) -> dict:
        try:
            claims = auth.verify_id_token(token, app=self.app, check_revoked=self.check_revoked)
        except auth.ExpiredIdTokenError:
            raise unauthorized("token_expired")
        except auth.RevokedIdTokenError:
            raise unauthorized("token_revoked")
        except auth.UserDisabledError:
            raise unauthorized("user_disabled")
        except (auth.InvalidIdTokenError, auth.UserNotFoundError, ValueError):
            raise unauthorized("invalid_token")
        except firebase_admin.exceptions.FirebaseError:  # Google's keys or Firebase Authentication unreachable
            raise Unavailable("auth_unavailable")
        # The SDK checks the times only of signed tokens; the emulator's unsigned ones would never expire.
        if self.emulator and not claims.get("exp", 0) > time.time():
            raise unauthorized("token_expired")
        return claims

    def web_config(self) -> dict:
        return {"mode": self.name,
                "firebase": {"apiKey": self.api_key, "authDomain": self.auth_domain, "projectId": self.project},
                "emulator": f"http://{self.emulator}" if self.emulator else None,
                "google_sign_in": self.google_sign_in}

    def csp_sources(self) -> dict[str, list[str]]:
        if self.emulator:
            origin = f"http://{self.emulator}"
            return {"connect-src": [origin], "frame-src": [origin] if self.google_sign_in else []}
        sources = {"connect-src": AUTH_ENDPOINTS}
        if self.google_sign_in:
            sources |= {"script-src": GOOGLE_SIGN_IN_SCRIPTS, "frame-src": [f"https://{self.auth_domain}"]}
        return sources

    def close(self):
        firebase_admin.delete_app(self.app)
