"""docs/deployment.md stays true mechanically: its ca.json fragments are what step-ca accepts,
its links lead somewhere, and README points at it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from stepca.config import ServerOptions
from stepca.retention import RetentionPolicy

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "deployment.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(GUIDE.read_text()) if lang == language]


def _fragment(body: str) -> dict[str, Any]:
    """A block shows one or more ca.json members (``"db": {...}``): parse them as an object."""
    parsed = json.loads("{" + body.strip() + "}")
    assert isinstance(parsed, dict)
    return parsed


def _data_sources(text: str) -> list[str]:
    return re.findall(r'"dataSource": "([^"]+)"', text)


def test_every_json_block_is_a_ca_json_fragment() -> None:
    blocks = _blocks("json")
    assert len(blocks) >= 3
    for body in blocks:
        _fragment(body)


def test_the_db_blocks_are_accepted() -> None:
    dbs = [fragment["db"] for fragment in map(_fragment, _blocks("json")) if "db" in fragment]
    assert len(dbs) >= 2 and all(db["type"] == "postgresql" for db in dbs)
    assert any("retention" in db for db in dbs)
    for db in dbs:
        assert set(db) <= {"type", "dataSource", "database", "retention"}
        RetentionPolicy.from_db_config(db)  # raises ConfigError on a bad block
        make_conninfo(db["dataSource"], dbname=db["database"])  # a valid libpq string


def test_every_data_source_in_the_text_is_a_libpq_string() -> None:
    sources = _data_sources(GUIDE.read_text())
    assert any("sslmode=verify-full" in source for source in sources)
    for source in sources:
        make_conninfo(source)


@pytest.mark.parametrize("text", re.findall(r'`("server": \{[^`]*\})`', GUIDE.read_text()))
def test_the_server_settings_in_the_text_are_accepted(text: str) -> None:
    ServerOptions.from_json(_fragment(text)["server"])


def test_the_links_lead_to_files_or_headings() -> None:
    text = GUIDE.read_text()
    headings = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in headings, f"no heading for {target}"
        else:
            assert (GUIDE.parent / target.split("#")[0]).exists(), f"{target} does not exist"


def test_readme_links_the_guide() -> None:
    assert "(docs/deployment.md)" in (REPO / "README.md").read_text()
