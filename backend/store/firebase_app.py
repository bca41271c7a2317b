"""One named firebase_admin app per store, with the credential that fits where Firestore is.

firebase_admin keeps apps in a process-wide registry, so each store gets a unique name and
deletes its app on close; tests can then open and close stores freely.
"""
import uuid

import firebase_admin
from firebase_admin import credentials
from google.auth.credentials import AnonymousCredentials


class EmulatorCredential(credentials.Base):
    """The emulator accepts any caller; google-auth's anonymous credentials send no token."""

    def get_credential(self):
        return AnonymousCredentials()


def choose_credential(credentials_path: str | None, emulator: str | None) -> credentials.Base:
    """A service-account key if one is configured, anonymous for the emulator (FIRESTORE_EMULATOR_HOST, which the
    client itself reads from the environment), else ADC."""
    if credentials_path:
        return credentials.Certificate(credentials_path)
    if emulator:
        return EmulatorCredential()
    return credentials.ApplicationDefault()


def open_app(project: str | None, credentials_path: str | None, emulator: str | None) -> firebase_admin.App:
    options = {"projectId": project} if project else {}
    return firebase_admin.initialize_app(choose_credential(credentials_path, emulator), options,
                                         name=f"analysis-store-{uuid.uuid4().hex}")


def close_app(app: firebase_admin.App):
    firebase_admin.delete_app(app)
