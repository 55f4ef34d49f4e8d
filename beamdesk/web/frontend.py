"""Script and stylesheet tags of the built front ends, from Vite's manifest.

`make frontend` builds frontend/ into static/app/; each page names its entry (e.g.
"viewer.html") and gets the hashed file names, so browsers can cache them forever. When
the build is missing the page says how to make it instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).parent / "static" / "app"
MANIFEST = APP_DIR / ".vite" / "manifest.json"
URL_PREFIX = "/static/app/"

_cache: dict[Path, tuple[float, dict]] = {}


@dataclass(frozen=True)
class Assets:
    script: str
    preload: list[str]
    css: list[str]


def _manifest(path: Path) -> dict | None:
    """The parsed manifest, re-read when a rebuild changes it."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    _cache[path] = (mtime, data)
    return data


def entry_assets(entry: str, manifest: Path = MANIFEST) -> Assets | None:
    """The entry's module script, the chunks it imports and all their CSS; None if unbuilt."""
    data = _manifest(manifest)
    if not data or entry not in data:
        return None
    preload: list[str] = []
    css: list[str] = []
    seen: set[str] = set()

    def walk(key: str) -> None:
        if key in seen or key not in data:
            return
        seen.add(key)
        chunk = data[key]
        for name in chunk.get("css", []):
            if URL_PREFIX + name not in css:
                css.append(URL_PREFIX + name)
        for imported in chunk.get("imports", []):
            walk(imported)
            preload.append(URL_PREFIX + data[imported]["file"])

    walk(entry)
    return Assets(script=URL_PREFIX + data[entry]["file"], preload=preload, css=css)
