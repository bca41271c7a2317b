"""The dashboard's files as Flask serves them: headers, a strict CSP the markup can live with, no outside requests."""

import re
from html.parser import HTMLParser

import pytest

from backend.api.web import FRONTEND_DIR

FRONTEND_FILES = sorted(p for p in FRONTEND_DIR.rglob("*") if p.is_file())
# The project's own files; frontend/vendor/ holds the built Firebase SDK bundle (npm run build),
# whose URLs are Firebase's endpoints, reachable only as far as the CSP allows.
OWN_FILES = [p for p in FRONTEND_FILES if "vendor" not in p.relative_to(FRONTEND_DIR).parts]


class Markup(HTMLParser):
    """The parts of index.html a Content-Security-Policy or an accessibility check cares about."""

    def __init__(self):
        super().__init__()
        self.tags = []  # (tag, attrs)
        self.inline_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.tags and self.tags[-1][0] == "script" and data.strip():
            self.inline_script = True


@pytest.fixture(scope="module")
def markup():
    parser = Markup()
    parser.feed((FRONTEND_DIR / "index.html").read_text())
    return parser


def test_the_dashboard_is_served_at_the_root_with_a_strict_csp(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "img-src 'self' data: blob:" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # Revalidation is cheap: an unchanged page answers 304.
    again = client.get("/", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_the_markup_needs_no_inline_script_or_style(markup):
    assert not markup.inline_script
    for tag, attrs in markup.tags:
        assert tag != "style", "a <style> element"
        assert "style" not in attrs, f"style= on <{tag}>"
        assert not [a for a in attrs if a.startswith("on")], f"an inline event handler on <{tag}>"
        if tag == "script":
            assert attrs.get("type") == "module" and attrs.get("src")


def test_controls_are_labelled_and_images_have_alt_text(markup):
    labelled = {attrs["for"] for tag, attrs in markup.tags if tag == "label" and "for" in attrs}
    for tag, attrs in markup.tags:
        if tag in ("input", "select", "textarea"):
            assert attrs.get("id") in labelled, f"<{tag} id={attrs.get('id')}> has no <label>"
        if tag == "img":
            assert "alt" in attrs, f"<img class={attrs.get('class')}> has no alt"
    assert markup.tags[0] == ("html", {"lang": "en"})


@pytest.mark.parametrize("path", [p.relative_to(FRONTEND_DIR).as_posix() for p in FRONTEND_FILES])
def test_every_file_is_served_with_its_type(client, path):
    response = client.get("/static/" + path)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
    assert response.mimetype == expected[path[path.rindex(".") :]]


def test_references_are_relative_and_resolve(client):
    """Every URL in the page, its stylesheets and modules is this service's own, by a relative path."""
    patterns = [r'(?:src|href)="([^"#][^"]*)"', r'from\s+"([^"]+)"', r"url\(([^)]+)\)", r'import\(\s*"([^"]+)"']
    checked = 0
    for path in OWN_FILES:
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"absolute URL in {path.name}"
        base = "/" if path.name == "index.html" else "/static/" + path.parent.relative_to(FRONTEND_DIR).as_posix() + "/"
        for pattern in patterns:
            for ref in re.findall(pattern, text):
                assert not ref.startswith("/"), f"{path.name}: {ref} is not relative"
                url = re.sub(r"/\./", "/", (base + ref).replace("//", "/"))
                assert client.get(url).status_code == 200, f"{path.name}: {ref} -> {url}"
                checked += 1
    assert checked >= 8


def test_nothing_outside_the_frontend_folder_is_served(client):
    for path in ("../backend/config.py", "..%2Fbackend%2Fconfig.py", "missing.js"):
        assert client.get("/static/" + path).status_code == 404
