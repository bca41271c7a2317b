"""GET/DELETE /analyses and /health: listing newest first with a cursor, get, delete, 404s."""

import pytest

from backend.store import get_store


def make_docs(app, count):
    """Documents written through the app's own store, with distinct, increasing timestamps."""
    with app.app_context():
        store = get_store()
        return [
            store.create(
                {
                    "id": f"doc{i:03d}",
                    "created_at": f"2026-11-24T10:{i // 60:02d}:{i % 60:02d}.000000Z",
                    "filename": f"{i}.png",
                    "owner": "local",
                }
            )
            for i in range(count)
        ]


def test_listing_pages_newest_first_through_every_document(app, client):
    make_docs(app, 7)
    seen, cursor = [], None
    while True:
        page = client.get("/analyses", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})}).get_json()
        assert len(page["items"]) <= 3
        seen += [doc["id"] for doc in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"doc{i:03d}" for i in range(6, -1, -1)]


def test_default_and_largest_limit(app, client):
    make_docs(app, 101)
    assert len(client.get("/analyses").get_json()["items"]) == 20
    page = client.get("/analyses?limit=100").get_json()
    assert len(page["items"]) == 100 and page["next_cursor"]


@pytest.mark.parametrize(
    "query, code",
    [
        ("limit=0", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("limit=%C2%B2", "invalid_limit"),
        ("limit=" + "9" * 5000, "invalid_limit"),
        ("cursor=garbage!", "invalid_cursor"),
    ],
)
def test_bad_listing_parameters(client, query, code):
    response = client.get(f"/analyses?{query}")
    assert response.status_code == 400 and response.get_json()["error"] == code


def test_get_and_delete(app, client):
    make_docs(app, 2)
    assert client.get("/analyses/doc001").get_json()["filename"] == "1.png"
    assert client.delete("/analyses/doc001").status_code == 204
    second = client.delete("/analyses/doc001")
    assert second.status_code == 404 and second.get_json()["error"] == "not_found"
    missing = client.get("/analyses/doc001")
    assert missing.status_code == 404 and "doc001" in missing.get_json()["message"]
    assert [d["id"] for d in client.get("/analyses").get_json()["items"]] == ["doc000"]


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nowhere").get_json()["error"] == "not_found"
    wrong = client.put("/analyze")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"


def test_health(client):
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["store"] == "sqlite"
    assert body["model"]["name"] and body["model"]["version"]


def test_cors_only_for_configured_origins(tmp_path):
    from backend.app import create_app

    client = create_app({"DATA_DIR": str(tmp_path), "CORS_ORIGINS": ["https://viewer.example.org"]}).test_client()
    preflight = {"Origin": "https://viewer.example.org", "Access-Control-Request-Method": "POST"}
    allowed = client.options("/analyze", headers=preflight)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    other = client.get("/health", headers={"Origin": "https://elsewhere.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    same_origin_only = create_app({"DATA_DIR": str(tmp_path)}).test_client()
    assert "Access-Control-Allow-Origin" not in same_origin_only.get("/health", headers=preflight).headers
