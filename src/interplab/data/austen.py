"""Return Jane Austen's six novels, read from Debian's `r-cran-janeaustenr` package, as a corpus.

The novels (public domain, from Project Gutenberg via Julia Silge's R package `janeaustenr`)
bring the offline text to over 1M tokens, which corpus-scale techniques (max-activating examples,
SAE harvesting) need. Nothing is downloaded here; the package is fetched once by the setup step:

    mkdir -p "${INTERPLAB_CACHE:-$HOME/.cache/interplab}/data/austen/deb"
    cd "${INTERPLAB_CACHE:-$HOME/.cache/interplab}/data/austen/deb"
    apt-get download r-cran-janeaustenr && dpkg -x r-cran-janeaustenr_*.deb .
    pip install rdata==1.1.0

(`apt-get download` and `dpkg -x` need no root and install nothing.)

1. Find the R package folder: `$INTERPLAB_AUSTEN_DIR`, the folder extracted under the cache
   (above), or a system-wide R install (`/usr/lib/R/site-library/janeaustenr`).
2. Read its lazy-load data base: `data/Rdata.rdx` is a gzip-compressed R serialisation of an
   index {variable: (offset, length)}; each variable is a slice of `data/Rdata.rdb` holding a
   4-byte big-endian length and a zlib stream of the R serialisation of a character vector (one
   element per line of the book). The `rdata` package parses R serialisations.
3. Unwrap each book's hard-wrapped lines: the lines of a paragraph (paragraphs are separated by
   empty lines, as in the Gutenberg text) are joined with spaces, paragraphs with a blank line.
   Write one JSON line per book, ``{"title", "text"}``, to `$INTERPLAB_CACHE/data/austen/
   austen.jsonl` atomically, keyed by the sha256 of the `.rdb` file, so
   `iter_corpus(austen_corpus_path())` and `tokenize_corpus` read it like any user corpus.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

from interplab.data.cache import atomic_write_text, data_cache_dir, sha256_file
from interplab.errors import UserFileError

AUSTEN_DIR_ENV_VAR = "INTERPLAB_AUSTEN_DIR"
AUSTEN_BOOKS: dict[str, str] = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
"""The R variable of each novel and its title, in publication order."""

_R_PACKAGE = Path("usr/lib/R/site-library/janeaustenr")
_SYSTEM_R_PACKAGE = Path("/") / _R_PACKAGE
_SETUP = (
    'mkdir -p "{deb}" && cd "{deb}" && apt-get download r-cran-janeaustenr && '
    "dpkg -x r-cran-janeaustenr_*.deb ."
)


class AustenNotFoundError(UserFileError):
    """Raised when the janeaustenr R package (or the `rdata` reader) is not available."""


def austen_package_dir() -> Path:
    """Return the folder of the extracted `janeaustenr` R package, or raise with the setup steps."""
    candidates = []
    configured = os.environ.get(AUSTEN_DIR_ENV_VAR)
    if configured:
        candidates.append(Path(configured).expanduser())
    deb = _deb_dir()
    candidates += [deb / _R_PACKAGE, _SYSTEM_R_PACKAGE]
    for folder in candidates:
        if (folder / "data" / "Rdata.rdb").is_file() and (folder / "data" / "Rdata.rdx").is_file():
            return folder
    tried = "\n  ".join(str(c) for c in candidates)
    raise AustenNotFoundError(
        "Jane Austen's novels come from Debian's r-cran-janeaustenr package, which was not found "
        f"in:\n  {tried}\nFetch and unpack it (no root needed, nothing is installed):\n  "
        + _SETUP.format(deb=deb)
        + f"\nor point ${AUSTEN_DIR_ENV_VAR} at an R library folder 'janeaustenr'."
    )


def austen_novels() -> dict[str, str]:
    """Return {title: full text} of the six novels, read from the cache or the R package."""
    path = austen_corpus_path()
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            out[record["title"]] = record["text"]
    return out


def austen_corpus_path() -> Path:
    """Return the JSONL corpus file (one novel per line), extracting it once into the cache."""
    package = austen_package_dir()
    rdb = package / "data" / "Rdata.rdb"
    source_sha = sha256_file(rdb)
    folder = data_cache_dir() / "austen"
    target = folder / f"austen-{source_sha[:16]}.jsonl"
    if target.is_file():
        return target
    books = _read_lazy_load(package / "data")
    missing = [name for name in AUSTEN_BOOKS if name not in books]
    if missing:
        raise AustenNotFoundError(
            f"{rdb} lacks the novels {missing}; found variables {sorted(books)}"
        )
    lines = [
        json.dumps({"title": title, "text": _unwrap(books[name])}, ensure_ascii=False)
        for name, title in AUSTEN_BOOKS.items()
    ]
    return atomic_write_text(target, "\n".join(lines) + "\n")


def _deb_dir() -> Path:
    """Return where the setup step unpacks the Debian package (not created here)."""
    return data_cache_dir() / "austen" / "deb"


def _read_lazy_load(data_dir: Path) -> dict[str, list[str]]:
    """Return every character-vector variable of an R lazy-load data base as a list of lines."""
    try:
        from rdata import conversion, parser
    except ImportError as exc:
        raise AustenNotFoundError(
            "reading the R data base needs the 'rdata' package: pip install rdata==1.1.0"
        ) from exc

    def parse(raw: bytes) -> Any:
        with warnings.catch_warnings():
            # rdata warns that a bare serialisation has no file header; that is what we hand it.
            warnings.simplefilter("ignore", UserWarning)
            return conversion.convert(parser.parse_data(raw, extension=".rds"))

    index = parse(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    blob = (data_dir / "Rdata.rdb").read_bytes()
    out: dict[str, list[str]] = {}
    for name, (offset, length) in index["variables"].items():
        chunk = blob[int(offset) : int(offset) + int(length)]
        (expected,) = struct.unpack(">I", chunk[:4])
        raw = zlib.decompress(chunk[4:])
        if len(raw) != expected:
            raise ValueError(f"{data_dir}: variable {name} has {len(raw)} bytes, not {expected}")
        value = parse(raw)
        out[str(name)] = ["" if line is None else str(line) for line in value.tolist()]
    return out


def _unwrap(lines: list[str]) -> str:
    """Return the book as paragraphs joined by blank lines, each paragraph on one line."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)
