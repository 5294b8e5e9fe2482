"""The links pages: create, list, show, edit, disable, delete, QR, CSV in and out."""

from __future__ import annotations

import csv
import io

import pytest

from shorty.ui.app import CSP
from tests.helpers import query, scalar
from tests.web_ui.conftest import csrf_of, post_form

FULL = {
    "target": "https://example.com/docs",
    "alias": "the-docs",
    "title": "The docs",
    "tags": "Docs, team",
    "expires_at": "2099-01-02T03:04",
    "max_clicks": "50",
    "redirect_type": "307",
    "forward_query": "append",
}


def create(client, **fields):
    return post_form(client, "/ui/new", fields)


def test_a_link_is_made_with_every_field(ada, clean):
    answer = create(ada, **FULL)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/links/the-docs?done=created"
    row = query(
        clean.database_url,
        "SELECT target, title, tags, expires_at, max_clicks, redirect_type, forward_query"
        " FROM urls WHERE code = 'the-docs'",
    )[0]
    assert row["target"] == "https://example.com/docs"
    assert (row["title"], row["tags"]) == ("The docs", ["docs", "team"])
    assert row["expires_at"].isoformat() == "2099-01-02T03:04:00+00:00"
    assert (row["max_clicks"], row["redirect_type"], row["forward_query"]) == (50, 307, "append")
    shown = ada.get("/ui/links/the-docs?done=created").text
    assert "Link created." in shown
    assert "https://sho.rt/the-docs" in shown
    assert 'src="/ui/links/the-docs/qr.svg"' in shown


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"target": "ftp://example.com/"}, "target", ""),
        ({"target": "https://example.com/", "alias": "x"}, "alias", "3 to 64"),
        ({"target": "https://example.com/", "alias": "login"}, "alias", "reserved"),
        ({"target": "https://example.com/", "max_clicks": "lots"}, "max_clicks", "integer"),
        ({"target": "https://example.com/", "expires_at": "2001-01-01T00:00"}, "expires_at", ""),
        ({"target": "https://example.com/", "tags": "no<html>"}, "tags", ""),
        (
            {"target": "https://example.com/", "redirect_type": "301", "max_clicks": "5"},
            "redirect_type",
            "",
        ),
    ],
)
def test_a_refusal_is_shown_beside_its_field_and_the_form_kept(ada, clean, fields, field, text):
    answer = create(ada, **fields)
    assert answer.status_code == 422, answer.text
    html = answer.text
    assert f'id="e-{field}"' in html
    assert (
        f'aria-describedby="h-{field} e-{field}"' in html
        or f'aria-describedby=" e-{field}"' in html
    )
    assert text in html
    assert f'value="{fields["target"]}"' in html  # what was typed stays
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_a_taken_alias_is_said_beside_the_alias(ada):
    create(ada, target="https://example.com/", alias="mine")
    answer = create(ada, target="https://example.com/2", alias="mine")
    assert answer.status_code == 409
    assert 'id="e-alias"' in answer.text
    assert "already taken" in answer.text


def test_the_table_filters_sorts_and_pages(ada, clean):
    for i in range(30):
        tags = "even" if i % 2 == 0 else "odd"
        create(ada, target=f"https://example.com/{i}", alias=f"link-{i:02d}", tags=tags)
    query(clean.database_url, "UPDATE urls SET click_count = 100 WHERE code = 'link-03'")
    first = ada.get("/ui/links").text
    assert first.count('<tr>\n    <td><a href="/ui/links/') == 25
    assert "link-29" in first
    assert "link-04" not in first
    assert 'rel="next"' in first
    next_page = first.split('href="', first.count("")).pop() if False else None
    href = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = ada.get(href.replace("&amp;", "&")).text
    assert "link-04" in second
    assert "link-00" in second
    assert "link-29" not in second
    assert "First page" in second
    assert 'rel="next"' not in second
    by_clicks = ada.get("/ui/links?sort=clicks").text
    assert by_clicks.index("link-03") < by_clicks.index("link-29")
    odd = ada.get("/ui/links?tag=odd").text
    assert "link-03" in odd
    assert "link-02" not in odd
    searched = ada.get("/ui/links?q=example.com/17").text
    assert "link-17" in searched
    assert "link-16" not in searched
    assert next_page is None


def test_an_empty_table_says_why(ada):
    assert "No links yet" in ada.get("/ui/links").text
    assert "No link matches these filters." in ada.get("/ui/links?q=nothing").text


def test_a_bad_cursor_is_a_message_not_a_crash(ada):
    answer = ada.get("/ui/links?cursor=garbage")
    assert answer.status_code == 200
    assert "Use the next_cursor of a previous page." in answer.text


def test_editing_changes_and_clears_fields(ada, clean):
    create(ada, **FULL)
    page = ada.get("/ui/links/the-docs/edit").text
    assert 'value="2099-01-02T03:04"' in page
    assert 'value="docs, team"' in page
    fields = {**FULL, "title": "", "expires_at": "", "max_clicks": "", "tags": "one"}
    fields.pop("alias")
    answer = post_form(ada, "/ui/links/the-docs/edit", fields)
    assert answer.headers["location"] == "/ui/links/the-docs?done=saved"
    row = query(
        clean.database_url,
        "SELECT title, expires_at, max_clicks, tags, disabled FROM urls WHERE code = 'the-docs'",
    )[0]
    assert (row["title"], row["expires_at"], row["max_clicks"]) == (None, None, None)
    assert (row["tags"], row["disabled"]) == (["one"], False)


def test_disabling_and_enabling(ada, clean):
    create(ada, target="https://example.com/", alias="switch")
    answer = post_form(ada, "/ui/links/switch/disable", {}, page="/ui/links/switch")
    assert answer.headers["location"] == "/ui/links/switch?done=disabled"
    assert scalar(clean.database_url, "SELECT disabled FROM urls") is True
    shown = ada.get("/ui/links/switch").text
    assert ">Enable</button>" in shown
    assert '<span class="state disabled">' in shown
    post_form(ada, "/ui/links/switch/enable", {}, page="/ui/links/switch")
    assert scalar(clean.database_url, "SELECT disabled FROM urls") is False


def test_deleting_asks_first(ada, clean):
    create(ada, target="https://example.com/", alias="doomed")
    confirm = ada.get("/ui/links/doomed/delete")
    assert "This cannot be undone." in confirm.text
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1
    answer = post_form(ada, "/ui/links/doomed/delete", {}, page="/ui/links/doomed/delete")
    assert answer.headers["location"] == "/ui/links?done=deleted"
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0
    gone = ada.get("/ui/links/doomed")
    assert gone.status_code == 404
    assert "Link not found" in gone.text


def test_someone_elses_link_is_not_found(settings, ada):
    from starlette.testclient import TestClient

    from shorty.api.app import create_app
    from tests.web_ui.conftest import sign_up

    create(ada, target="https://example.com/", alias="adas")
    with TestClient(create_app(settings)) as bob:
        sign_up(bob, "bob@example.com")
        assert bob.get("/ui/links/adas").status_code == 404
        token = csrf_of(bob.get("/ui/links").text)
        answer = bob.post("/ui/links/adas/delete", data={"csrf": token})
        assert answer.status_code == 404
    assert "adas" in ada.get("/ui/links").text


def test_the_qr_code_comes_as_svg_and_png(ada):
    create(ada, target="https://example.com/", alias="coded")
    svg = ada.get("/ui/links/coded/qr.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content.lstrip().startswith(b"<?xml") or b"<svg" in svg.content[:200]
    png = ada.get("/ui/links/coded/qr.png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert ada.get("/ui/links/coded/qr.gif").status_code == 404


def test_export_and_import_round_trip(ada, clean):
    create(ada, **FULL)
    exported = ada.get("/ui/links.csv")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == 'attachment; filename="shorty-links.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert (rows[0]["code"], rows[0]["tags"]) == ("the-docs", "docs, team")
    query(clean.database_url, "DELETE FROM urls")
    answer = _import(ada, exported.text.encode())
    assert answer.status_code == 200
    assert "1 made, 0 refused" in answer.text
    row = query(clean.database_url, "SELECT code, tags, max_clicks, forward_query FROM urls")[0]
    assert (row["code"], row["tags"], row["max_clicks"], row["forward_query"]) == (
        "the-docs",
        ["docs", "team"],
        50,
        "append",
    )


def _import(client, content: bytes, name: str = "links.csv"):
    token = csrf_of(client.get("/ui/import").text)
    return client.post(
        "/ui/import", data={"csrf": token}, files={"file": (name, content, "text/csv")}
    )


def test_an_import_makes_the_good_rows_and_says_what_is_wrong_with_the_bad(ada, clean):
    content = (
        b"target,alias,tags,max_clicks\n"
        b'https://example.com/1,first,"a, b",\n'
        b"not a url,second,,\n"
        b"https://example.com/3,third,,many\n"
        b"https://example.com/4,,,7\n"
    )
    answer = _import(ada, content)
    assert answer.status_code == 200
    assert "2 made, 2 refused" in answer.text
    body = answer.text
    assert body.count('class="bad"') == 2
    assert "max_clicks: Input should be a valid integer" in body
    codes = [r["code"] for r in query(clean.database_url, "SELECT code FROM urls ORDER BY id")]
    assert codes[0] == "first"
    assert len(codes) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"alias,title\nx,y\n", "one of them target"),
        (b"target,colour\nhttps://example.com/,red\n", "Unknown columns: colour"),
        (b"target\n", "no rows"),
    ],
)
def test_a_file_that_is_no_import_is_refused_whole(ada, clean, content, message):
    answer = _import(ada, content)
    assert answer.status_code == 422
    assert message in answer.text
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_every_page_carries_the_policy_and_is_not_cached(ada):
    create(ada, target="https://example.com/", alias="headers")
    for path in ["/ui/links", "/ui/new", "/ui/links/headers", "/ui/login", "/ui/nowhere"]:
        answer = ada.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert "unsafe-inline" not in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
    static = ada.get("/ui/static/ui.css")
    assert static.status_code == 200
    assert "immutable" in static.headers["cache-control"]


def test_an_unknown_page_is_the_apps_own_404(ada):
    answer = ada.get("/ui/nowhere")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "Page not found" in answer.text
    assert ada.get("/ui/links/%00x").status_code == 404


def test_a_form_too_large_is_refused(ada, clean):
    token = csrf_of(ada.get("/ui/new").text)
    answer = ada.post("/ui/new", data={"csrf": token, "target": "https://e.com/" + "a" * 70_000})
    assert answer.status_code == 413
    assert "Form too large" in answer.text
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0
