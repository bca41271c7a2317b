"""The error catalogue is the one source of codes: the code raises only catalogued codes, uses every one,
and the README's table is made from it."""
import re
import string

from backend.errors import CATALOGUE, ServiceError, markdown_table
from backend.imaging.dicom import WINDOWS
from tests.fixtures.data import REPO

# A code is named where an error is made: ServiceError("code"), one of its kinds, unauthorized("code"), or a
# table that maps another layer's refusals (werkzeug's, waitress's) to codes.
RAISED = re.compile(r'(?:ServiceError|InvalidInput|NotAllowed|NotFound|Unavailable|unauthorized)\(\s*"([a-z0-9_]+)"')
MAPPED = re.compile(r'\d{3}: "([a-z0-9_]+)"')
SUBCLASS_CODES = re.compile(r'super\(\).__init__\("([a-z0-9_]+)"')


def codes_in_source() -> set[str]:
    found = set()
    for path in (REPO / "backend").rglob("*.py"):
        text = path.read_text()
        found |= set(RAISED.findall(text)) | set(SUBCLASS_CODES.findall(text))
        if "CODES = {" in text:
            found |= set(MAPPED.findall(text))
    return found


def test_the_code_raises_only_catalogued_codes_and_every_code_is_used():
    used = codes_in_source()
    assert used - set(CATALOGUE) == set(), "raised but not in backend/errors.py's CATALOGUE"
    assert set(CATALOGUE) - used == set(), "in the catalogue but never raised: remove it"


def test_every_message_fills_from_its_params():
    for code, entry in CATALOGUE.items():
        fields = {name for _, name, _, _ in string.Formatter().parse(entry.message) if name}
        error = ServiceError(code, **{name: "X" for name in fields})
        assert error.status == entry.status and error.message.endswith((".", ")"))


def test_a_detail_adds_a_sentence():
    error = ServiceError("invalid_frame", "This file has 3 frame(s): 0 to 2.")
    assert error.message == CATALOGUE["invalid_frame"].message + " This file has 3 frame(s): 0 to 2."


def test_the_window_message_names_every_window():
    assert all(window in CATALOGUE["invalid_window"].message for window in WINDOWS)


def test_the_readme_error_table_is_the_catalogue():
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- error table: backend.errors.markdown_table() -->\n", 1)[1]
    table = table.split("\n<!-- end of error table -->", 1)[0]
    assert table == markdown_table(), "paste backend.errors.markdown_table() into README.md between its markers"
