"""Crash-safe writes: what a killed write leaves behind, and cleaning it up on resume."""

from __future__ import annotations

from pathlib import Path

from attnaudit.utils.io import atomic_path, remove_stale_temp_files


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m" / "summary.json"
    with atomic_path(target) as tmp:
        tmp.write_text('{"half', encoding="utf-8")
        left = tmp.with_name(tmp.name.replace(".summary.json.", ".metrics.json.", 1))
        left.write_bytes(tmp.read_bytes())  # the same kind of name, left by a killed process
    assert target.is_file() and not tmp.exists()
    kept = [tmp_path / ".notes.tmp", tmp_path / "models" / "run.tmp", tmp_path / ".hidden",
            tmp_path / "models" / "m" / ".summary.json.tmp"]
    for path in kept:
        path.write_text("mine", encoding="utf-8")

    assert remove_stale_temp_files(tmp_path) == [left]
    assert not left.exists()
    assert target.is_file() and all(p.is_file() for p in kept)
    assert remove_stale_temp_files(tmp_path / "missing") == []
