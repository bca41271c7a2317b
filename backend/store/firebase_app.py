"""One named firebase_admin app per store, with the credential that fits where Firestore is.

firebase_admin keeps apps in a process-wide registry, so each store gets a unique name and
deletes its app on close; tests can then open and close stores freely.
"""
import os
import uuid

import firebase_admin
from firebase_admin import credentials
from google.auth.credentials import AnonymousCredentials


class EmulatorCredential(credentials.Base):
    """The emulator accepts any caller; google-auth's anonymous credentials send no token."""

    def get_credential(self):
        return AnonymousCredentials()


def choose_credential(credentials_path: str | None) -> credentials.Base:
    """A service-account key if one is configured, anonymous for the emulator, else ADC."""
    if credentials_path:
        return credentials.Certificate(credentials_path)
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return EmulatorCredential()
    return credentials.ApplicationDefault()


def open_app(project: str | None, credentials_path: str | None) -> firebase_admin.App:
    options = {"projectId": project} if project else {}
    return firebase_admin.initialize_app(choose_credential(credentials_path), options,
                                         name=f"analysis-store-{uuid.uuid4().hex}")


def close_app(app: firebase_admin.App):
    firebase_admin.delete_app(app)
