"""Download transport for ``gdrive://<file id>`` weight URLs (Google Drive's confirm flow).

A plain GET of a large Drive file returns an HTML page ("Google Drive can't scan this file for
viruses") instead of the file. The page carries a confirmation: a ``<form>`` with hidden inputs
(current Drive), a ``confirm=<token>`` link, or a ``download_warning`` cookie (older Drive). The
transport follows it once and returns the file's response; if Drive still answers with HTML
(quota exceeded, access denied, file removed) it raises :class:`WeightsError` with what to do.

``larq_poke.zoo`` registers it for the ``gdrive`` scheme: ``weights.fetch(entry)`` then works for
entries whose ``url`` is ``gdrive://<id>``. The download endpoint is ``GDRIVE_DOWNLOAD_URL`` (override
with ``$LARQ_POKE_GDRIVE_URL``, e.g. for a mirror).
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from typing import Dict, List, Optional, Tuple

from larq_poke.zoo.weights import WeightsError

__all__ = ["GDRIVE_DOWNLOAD_URL", "open_gdrive", "gdrive_view_url"]

GDRIVE_DOWNLOAD_URL = "https://drive.google.com/uc"

_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{10,}$")
_MAX_PAGE_BYTES = 1 << 20


def gdrive_view_url(file_id: str) -> str:
    """The page a person opens in a browser to download the file by hand."""
    return f"https://drive.google.com/file/d/{file_id}/view"


class _FormParser(HTMLParser):
    """Collects ``<form action=...>`` with their ``<input name=... value=...>`` fields."""

    def __init__(self):
        super().__init__()
        self.forms: List[Tuple[str, Dict[str, str]]] = []
        self._current: Optional[Tuple[str, Dict[str, str]]] = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._current = (attrs.get("action", ""), {})
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attrs.get("name"):
            self._current[1][attrs["name"]] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def _is_html(response) -> bool:
    content_type = response.headers.get("Content-Type", "") or ""
    return content_type.split(";")[0].strip().lower() == "text/html"


def _confirm_url(page: str, page_url: str, file_id: str, cookies) -> Optional[str]:
    parser = _FormParser()
    try:
        parser.feed(page)
    except Exception:  # malformed HTML: fall through to the other forms of confirmation
        pass
    for action, fields in parser.forms:
        if fields.get("confirm") or fields.get("id") == file_id:
            target = urllib.parse.urljoin(page_url, html.unescape(action) or page_url)
            separator = "&" if urllib.parse.urlsplit(target).query else "?"
            return target + separator + urllib.parse.urlencode(fields)
    match = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    token = match.group(1) if match else None
    if token is None:
        for cookie in cookies:
            if cookie.name.startswith("download_warning"):
                token = cookie.value
                break
    if token is None:
        return None
    base = os.environ.get("LARQ_POKE_GDRIVE_URL") or GDRIVE_DOWNLOAD_URL
    return base + "?" + urllib.parse.urlencode({"export": "download", "id": file_id, "confirm": token})


def open_gdrive(url: str, timeout: float):
    """Open ``gdrive://<file id>`` and return the file's HTTP response (a binary stream)."""
    file_id = url.split("://", 1)[1].strip("/")
    if not _FILE_ID.match(file_id):
        raise WeightsError(f"Malformed Google Drive URL {url!r}: expected gdrive://<file id>.")
    base = os.environ.get("LARQ_POKE_GDRIVE_URL") or GDRIVE_DOWNLOAD_URL
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    headers = {"User-Agent": "larq-poke"}
    first_url = base + "?" + urllib.parse.urlencode({"export": "download", "id": file_id})
    response = opener.open(urllib.request.Request(first_url, headers=headers), timeout=timeout)
    if not _is_html(response):
        return response
    with response:
        page = response.read(_MAX_PAGE_BYTES).decode("utf-8", "replace")
        page_url = response.geturl()
    confirm = _confirm_url(page, page_url, file_id, cookies)
    manual = (
        f"Download it in a browser from {gdrive_view_url(file_id)} and install it with "
        "`larq-poke weights import MODEL FILE`."
    )
    if confirm is None:
        raise WeightsError(
            f"Google Drive answered {url} with a web page that has no download confirmation "
            f"(the file may be private, removed or over its download quota). {manual}"
        )
    response = opener.open(urllib.request.Request(confirm, headers=headers), timeout=timeout)
    if _is_html(response):
        response.close()
        raise WeightsError(
            f"Google Drive did not serve {url} after the confirmation step (download quota "
            f"exceeded or access denied). {manual}"
        )
    return response

