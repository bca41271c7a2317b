"""Schemathesis hooks, loaded by tests/test_schemathesis.py (SCHEMATHESIS_HOOKS): STOW-RS bodies on the wire.

Schemathesis has no serializer for `multipart/related` (POST /dicomweb/studies); the generated body is sent
as its octet-stream serializer sends bytes. Its Content-Type names no boundary, so the documented answer is
400 invalid_multipart (tests/schemathesis.toml); tests/test_openapi.py and tests/test_dicom_e2e.py send real
bodies.
"""

import schemathesis

schemathesis.serializer.alias("multipart/related", "application/octet-stream")
