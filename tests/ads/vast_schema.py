"""Checks of ad tag documents against the standards, for the VAST and VMAP tests.

VAST: IAB Tech Lab's `vast_4.2.xsd`, read from the shared data folder beside the repository
(`../shared/data/vast/`; never copied in), with lxml (libxml2), which checks `xs:anyURI`
strictly. The schema refuses the spec's bracket macros (`[ERRORCODE]`) in an anyURI, so a
document is validated as a player uses it: each macro replaced by a value, as the player does
before calling the URL. Only the macros the platform means to send may appear.

VMAP 1.0 has no schema here: `vmap_breaks` checks its structure (namespace, version, each
AdBreak's timeOffset, breakType and one ad source) and returns the breaks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

VAST = "{http://www.iab.com/VAST}"
VMAP = "{http://www.iab.net/videosuite/vmap}"
SCHEMA_PATH = Path(settings.BASE_DIR).parent / "shared" / "data" / "vast" / "vast_4.2.xsd"
# The macros the platform writes, and the value a player puts in their place.
MACRO_VALUES = {"ERRORCODE": "303", "CACHEBUSTING": "48151623"}
MACRO = re.compile(r"\[([A-Z_]+)\]")
TIME_OFFSET = re.compile(r"^(start|end|\d{2}:\d{2}:\d{2}(\.\d{3})?|\d{1,3}%|#\d+)$")


def _schema():
    etree = pytest.importorskip("lxml.etree", reason="needs lxml (requirements/dev.txt)")
    if not SCHEMA_PATH.exists():
        pytest.skip(f"needs IAB's VAST 4.2 schema at {SCHEMA_PATH}")
    return etree, etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def with_macros_replaced(text: str) -> str:
    unknown = set(MACRO.findall(text)) - set(MACRO_VALUES)
    assert not unknown, f"macros the platform does not mean to send: {sorted(unknown)}"
    return MACRO.sub(lambda match: MACRO_VALUES[match.group(1)], text)


def valid_vast(content: bytes | str):
    """The VAST document's root element, after asserting it validates against the schema."""
    etree, schema = _schema()
    text = content.decode() if isinstance(content, bytes) else content
    root = etree.fromstring(with_macros_replaced(text).encode())
    assert schema.validate(root), "\n".join(str(error) for error in schema.error_log)
    assert root.tag == f"{VAST}VAST" and root.get("version") == "4.2"
    return root


def vmap_breaks(content: bytes) -> list[dict]:
    """The breaks of a VMAP 1.0 document, after checking its structure."""
    etree = pytest.importorskip("lxml.etree", reason="needs lxml (requirements/dev.txt)")
    root = etree.fromstring(content)
    assert root.tag == f"{VMAP}VMAP" and root.get("version") == "1.0"
    breaks = []
    for element in root:
        assert element.tag in (f"{VMAP}AdBreak", f"{VMAP}Extensions"), element.tag
        if element.tag != f"{VMAP}AdBreak":
            continue
        assert TIME_OFFSET.match(element.get("timeOffset", "")), element.get("timeOffset")
        assert element.get("breakType") in ("linear", "nonlinear", "display")
        sources = element.findall(f"{VMAP}AdSource")
        assert len(sources) == 1
        (content_element,) = list(sources[0])
        assert content_element.tag in (
            f"{VMAP}VASTAdData",
            f"{VMAP}AdTagURI",
            f"{VMAP}CustomAdData",
        )
        assert content_element.get("templateType")
        breaks.append(
            {
                "time_offset": element.get("timeOffset"),
                "break_id": element.get("breakId"),
                "source_id": sources[0].get("id"),
                "ad_tag": (content_element.text or "").strip(),
            }
        )
    return breaks
