"""What a click records: its own id, unique across clicks and processes."""

import subprocess
import sys

from shorty.redirect.clicks import FIELDS, click_fields

HEADERS = [(b"user-agent", b"test/1.0"), (b"referer", b"https://ref.example/page")]


def fields_of(click):
    return dict(zip(FIELDS, click, strict=True))


def test_a_click_carries_its_own_id():
    first = fields_of(click_fields("abc", 7, HEADERS, "203.0.113.9", 1767225600000, b"k"))
    again = fields_of(click_fields("abc", 7, HEADERS, "203.0.113.9", 1767225600000, b"k"))
    assert first["cid"] != again["cid"]  # the same request twice is two clicks
    assert {k: v for k, v in first.items() if k != "cid"} == {
        "code": "abc",
        "id": "7",
        "ts": "1767225600000",
        "ref": "ref.example",
        "ua": "test/1.0",
        "vh": first["vh"],
        "net": "203.0.113.0",
    }
    # Never taken for a stream entry ID (the key of clicks written before click ids).
    assert "-" not in first["cid"]
    assert 16 < len(first["cid"]) <= 64


def test_processes_and_forked_children_make_other_ids():
    script = (
        "import os, sys\n"
        "from shorty.redirect.clicks import FIELDS, click_fields\n"
        "def cid():\n"
        "    return click_fields('abc', 1, [], '', 0, b'k')[FIELDS.index('cid')]\n"
        "cid()\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.write(w, cid().encode())\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "print(cid(), os.read(r, 100).decode())\n"
    )
    ids = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        ids += run.stdout.split()
    assert len(ids) == 4
    assert len(set(ids)) == 4
    # The child did not go on with its parent's sequence either.
    assert len({i[:16] for i in ids}) == 4
