"""Loaders: every supported format read from small real files, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from attnaudit.data.loaders import detect_format, load_documents, normalise_label
from attnaudit.data.types import DataError


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    lines = "".join(json.dumps(r) + "\n" for r in records)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(lines.encode("utf-8")))
        return path
    return write(path, lines)


# ---------------------------------------------------------------------------------------------------
# Zhang et al. CSVs


def test_zhang_label_text(tmp_path: Path) -> None:
    f = write(tmp_path / "yelp.csv", '"5","Great food.\\nWould return."\n"1","Awful, ""really"" bad."\n')
    docs = load_documents(f)
    assert [(d.doc_id, d.label, d.split) for d in docs] == [("0", "5", None), ("1", "1", None)]
    assert docs[0].text == "Great food.\nWould return."  # the files' literal \n is a line break
    assert docs[1].text == 'Awful, "really" bad.'


def test_zhang_title_text_folder_gives_splits(tmp_path: Path) -> None:
    write(tmp_path / "amazon" / "train.csv", '"3","Title A","Body A"\n"4","","Body B"\n')
    write(tmp_path / "amazon" / "test.csv", '"2","Title C","Body C"\n')
    write(tmp_path / "amazon" / "readme.txt", "not data")
    assert detect_format(tmp_path / "amazon") == "zhang-csv"
    docs = load_documents(tmp_path / "amazon")
    assert [(d.doc_id, d.label, d.split, d.text) for d in docs] == [
        ("test/0", "2", "test", "Title C\nBody C"),
        ("train/0", "3", "train", "Title A\nBody A"),
        ("train/1", "4", "train", "Body B"),  # an empty title adds no blank line
    ]


def test_zhang_yahoo_four_fields(tmp_path: Path) -> None:
    f = write(tmp_path / "train.csv", '"7","Why?","Details here","Because.\\nSee above."\n')
    (doc,) = load_documents(f, fmt="zhang-csv")
    assert doc.label == "7" and doc.text == "Why?\nDetails here\nBecause.\nSee above."


def test_zhang_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", '1,"a"\n2,"b"\n\n3,"c","d","e","f"\n')
    expected = r"data\.csv, line 4: expected 2 fields like the first row, got 5"
    with pytest.raises(DataError, match=expected):
        load_documents(f)


def test_zhang_bad_first_row(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "1,a,b,c,d\n")
    with pytest.raises(DataError, match=r"data\.csv, line 1: expected 2, 3 or 4 fields"):
        load_documents(f, fmt="zhang-csv")


def test_zhang_non_integer_label(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", '1,"a"\nx,"b"\n')
    with pytest.raises(DataError, match=r"data\.csv, line 2: label 'x' is not an integer"):
        load_documents(f, fmt="zhang-csv")


def test_zhang_multiline_field_counts_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", '1,"line one\nline two"\n2,"x",3,4,5\n')
    with pytest.raises(DataError, match=r"data\.csv, line 3: expected 2 fields"):
        load_documents(f)


# ---------------------------------------------------------------------------------------------------
# CSV with a header, auto-detection


def test_csv_with_header_and_split_column(tmp_path: Path) -> None:
    f = write(
        tmp_path / "data.csv",
        "id,body,stars,split\nr1,good,5.0,train\nr2,bad,1,validation\nr3,meh,3,test\n",
    )
    assert detect_format(f, text_column="body", label_column="stars") == "csv"
    docs = load_documents(f, text_column="body", label_column="stars")
    assert [(d.doc_id, d.label, d.split, d.text) for d in docs] == [
        ("train/r1", "5", "train", "good"),  # 5.0 and 5 are the same class
        ("dev/r2", "1", "dev", "bad"),
        ("test/r3", "3", "test", "meh"),
    ]


def test_csv_without_id_uses_row_numbers(tmp_path: Path) -> None:
    f = write(tmp_path / "data.tsv", "label\ttext\npos\tnice one\nneg\tnot nice\n")
    docs = load_documents(f)
    assert [(d.doc_id, d.label, d.text) for d in docs] == [
        ("0", "pos", "nice one"), ("1", "neg", "not nice"),
    ]


def test_headerless_csv_with_text_first_is_not_guessed(tmp_path: Path) -> None:
    # First field not an integer: read as a CSV with a header, which then lacks the columns.
    f = write(tmp_path / "data.csv", "great movie,pos\nbad movie,neg\n")
    expected = r"data\.csv: no text column 'text' \(columns: great movie, pos\)"
    with pytest.raises(DataError, match=expected):
        load_documents(f)


def test_header_with_integer_first_field_but_named_columns_is_csv(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "1,text,label\n1,hello,a\n")
    assert detect_format(f) == "csv"


def test_csv_wrong_field_count(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "text,label\na,1\nb,2\nc,3,4,5,6\n")
    with pytest.raises(DataError, match=r"data\.csv, line 4: expected 2 fields like the header, got 5"):
        load_documents(f)


def test_csv_missing_label_column(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "text,stars\na,1\n")
    with pytest.raises(DataError, match=r"data\.csv: no label column 'label' \(columns: text, stars\)"):
        load_documents(f)


def test_csv_not_utf8_names_line(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "text,label\nfine,1\ncaf\xe9,2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data\.csv, line 3: not UTF-8 \(byte 0xe9"):
        load_documents(f)


def test_csv_unknown_split_value(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "text,label,split\na,1,train\nb,1,holdout\n")
    with pytest.raises(DataError, match=r"data\.csv, line 3: unknown split 'holdout'"):
        load_documents(f)


def test_csv_bom_is_ignored(tmp_path: Path) -> None:
    f = write(tmp_path / "data.csv", "\ufefftext,label\nhello,a\n")
    assert load_documents(f)[0].text == "hello"


# ---------------------------------------------------------------------------------------------------
# JSON lines


def test_jsonl_and_gz(tmp_path: Path) -> None:
    records = [{"text": "one", "label": 1}, {"text": "two", "label": 2.0}]
    for name in ("d.jsonl", "d.jsonl.gz"):
        docs = load_documents(write_jsonl(tmp_path / name, records))
        assert [(d.doc_id, d.label, d.text) for d in docs] == [("0", "1", "one"), ("1", "2", "two")]


def test_jsonl_ids_repeating_per_split_and_label(tmp_path: Path) -> None:
    # The IMDB layout: ids restart in each split and each label folder.
    records = [
        {"split": s, "label": lab, "id": i, "text": f"{s} {lab} {i}"}
        for s in ("train", "test") for lab in ("neg", "pos") for i in range(2)
    ]
    docs = load_documents(write_jsonl(tmp_path / "imdb.jsonl", records))
    assert [d.doc_id for d in docs][:3] == ["train/neg/0", "train/neg/1", "train/pos/0"]
    assert len({d.doc_id for d in docs}) == len(records)


def test_jsonl_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    records = [{"id": 7, "text": "a", "label": "x"}, {"id": 7, "text": "b", "label": "x"}]
    f = write_jsonl(tmp_path / "d.jsonl", records)
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: duplicate id '7' \(first at .*line 1\)"):
        load_documents(f)


def test_jsonl_invalid_json_names_line(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"d\.jsonl, line 3: invalid JSON"):
        load_documents(f)


def test_json_array_is_explained(tmp_path: Path) -> None:
    f = write(tmp_path / "d.json", '[{"text": "a",\n "label": 1}]\n')
    with pytest.raises(DataError, match=r"d\.json, line 1: invalid JSON .*JSON array"):
        load_documents(f)


def test_jsonl_missing_field(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1}, {"body": "b", "label": 2}])
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: no text field 'text'"):
        load_documents(f)


def test_jsonl_missing_label_value(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": None}])
    with pytest.raises(DataError, match=r"d\.jsonl, line 1: missing label"):
        load_documents(f)


def test_jsonl_not_utf8(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", b'{"text": "ok", "label": 1}\n{"text": "\xff", "label": 1}\n')
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: not UTF-8"):
        load_documents(f)


def test_unknown_label(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "meh"}])
    expected = r"d\.jsonl, line 2: unknown label 'meh' \(expected one of: neg, pos\)"
    with pytest.raises(DataError, match=expected):
        load_documents(f, labels=["pos", "neg"])


def test_empty_documents_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [
        {"text": "a", "label": 1}, {"text": "  ", "label": 1}, {"text": "b", "label": 2},
        {"text": "", "label": 2}, {"text": None, "label": 2},
    ]
    f = write_jsonl(tmp_path / "d.jsonl", records)
    with caplog.at_level(logging.WARNING, logger="attnaudit.data.loaders"):
        docs = load_documents(f)
    assert [d.text for d in docs] == ["a", "b"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3 empty" in warnings[0].getMessage()
    assert "d.jsonl, line 2" in warnings[0].getMessage()


def test_empty_document_error(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1}, {"text": " ", "label": 1}])
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: empty document"):
        load_documents(f, on_empty="error")


def test_all_empty_is_an_error(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": "", "label": 1}])
    with pytest.raises(DataError, match=r"d\.jsonl: no documents"):
        load_documents(f)


def test_missing_path() -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv: no such file or directory"):
        load_documents("nowhere.csv")


def test_unknown_extension_and_format(tmp_path: Path) -> None:
    f = write(tmp_path / "data.xml", "<x/>")
    with pytest.raises(DataError, match=r"data\.xml: cannot tell the format"):
        load_documents(f)
    with pytest.raises(DataError, match="unknown data format 'xml'"):
        load_documents(f, fmt="xml")


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(b'{"text": "a", "label": 1}\n' for _ in range(2000)))
    f = write(tmp_path / "d.jsonl.gz", data[: len(data) // 2])
    with pytest.raises(DataError, match=r"d\.jsonl\.gz, line \d+: cannot read"):
        load_documents(f)


# ---------------------------------------------------------------------------------------------------
# Parquet


def test_parquet_float_labels_and_split(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "review": ["good", "bad", "ok"],
        "label": [1.0, 2.0, None],
        "split": ["train", "test", "valid"],
    })
    f = tmp_path / "d.parquet"
    frame.iloc[:2].to_parquet(f)
    docs = load_documents(f, text_column="review")
    assert [(d.doc_id, d.label, d.split) for d in docs] == [
        ("train/0", "1", "train"), ("test/0", "2", "test"),
    ]
    frame.to_parquet(f)
    with pytest.raises(DataError, match=r"d\.parquet, row 3: missing label"):
        load_documents(f, text_column="review")


def test_parquet_missing_column(tmp_path: Path) -> None:
    f = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a"], "stars": [1]}).to_parquet(f)
    with pytest.raises(DataError, match=r"d\.parquet: no label column 'label' \(columns: text, stars\)"):
        load_documents(f)


def test_parquet_folder_of_hub_shards(tmp_path: Path) -> None:
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_parquet(data / "train-00000-of-00002.parquet")
    pd.DataFrame({"text": ["c"], "label": [1]}).to_parquet(data / "train-00001-of-00002.parquet")
    pd.DataFrame({"text": ["d"], "label": [0]}).to_parquet(data / "test-00000-of-00001.parquet")
    docs = load_documents(tmp_path / "hub")
    assert [(d.doc_id, d.text) for d in docs] == [
        ("test/0", "d"), ("train/0", "a"), ("train/1", "b"), ("train/2", "c"),
    ]


def test_folder_with_unsplit_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", '{"text": "a", "label": 1}\n')
    write(tmp_path / "b.jsonl", '{"text": "b", "label": 1}\n')
    with pytest.raises(DataError, match=r"a\.jsonl: cannot tell its split"):
        load_documents(tmp_path)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    f = write(tmp_path / "d.parquet", "not parquet")
    with pytest.raises(DataError, match=r"d\.parquet: not a readable Parquet file"):
        load_documents(f)


# ---------------------------------------------------------------------------------------------------
# Hugging Face save_to_disk


def test_hf_disk_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    features = datasets.Features({
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["neg", "pos"]),
    })

    def part(texts: list[str], labels: list[int]) -> object:
        return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)

    folder = tmp_path / "imdb_hf"
    datasets.DatasetDict({
        "train": part(["good", "bad", ""], [1, 0, 0]),
        "validation": part(["fine"], [1]),
        "test": part(["awful"], [0]),
        "unsupervised": part(["whatever"], [-1]),
    }).save_to_disk(str(folder))
    assert detect_format(folder) == "hf-disk"
    docs = load_documents(folder)
    assert [(d.doc_id, d.label, d.split, d.text) for d in docs] == [
        ("train/0", "pos", "train", "good"),  # ClassLabel ids become their names
        ("train/1", "neg", "train", "bad"),
        ("dev/0", "pos", "dev", "fine"),
        ("test/0", "neg", "test", "awful"),
    ]
    # One split folder of the DatasetDict on its own.
    assert [d.doc_id for d in load_documents(folder / "validation")] == ["dev/0"]


def test_hf_disk_single_dataset_with_id_column(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    folder = tmp_path / "single"
    datasets.Dataset.from_dict(
        {"uid": ["a1", "b2"], "content": ["x y", "z"], "stars": [5, 1]}
    ).save_to_disk(str(folder))
    docs = load_documents(folder, text_column="content", label_column="stars", id_column="uid")
    assert [(d.doc_id, d.label, d.split) for d in docs] == [("a1", "5", None), ("b2", "1", None)]
    with pytest.raises(DataError, match=r"data-00000-of-00001\.arrow: no text column 'text'"):
        load_documents(folder)


# ---------------------------------------------------------------------------------------------------
# aclImdb folders


def make_aclimdb(root: Path) -> Path:
    acl = root / "aclImdb"
    write(acl / "train" / "pos" / "10_8.txt", "Loved it.<br /><br />Really.")
    write(acl / "train" / "pos" / "2_9.txt", "Great.")
    write(acl / "train" / "neg" / "0_3.txt", "Dull.")
    write(acl / "test" / "pos" / "0_10.txt", "Superb.")
    write(acl / "test" / "neg" / "0_1.txt", "Awful.")
    write(acl / "train" / "unsup" / "0_0.txt", "No label.")
    write(acl / "train" / "urls_pos.txt", "http://example.org\n")
    write(acl / "imdb.vocab", "the\n")
    return acl


def test_aclimdb_folder(tmp_path: Path) -> None:
    acl = make_aclimdb(tmp_path)
    for path in (acl, tmp_path):  # the aclImdb folder or the folder holding it
        assert detect_format(path) == "aclimdb"
        docs = load_documents(path)
        assert [(d.doc_id, d.label, d.split) for d in docs] == [
            ("train/neg/0_3", "neg", "train"),
            ("train/pos/2_9", "pos", "train"),  # numeric order of ids, not text order
            ("train/pos/10_8", "pos", "train"),
            ("test/neg/0_1", "neg", "test"),
            ("test/pos/0_10", "pos", "test"),
        ]
    ratings = load_documents(acl, label_column="rating")
    assert [d.label for d in ratings] == ["3", "9", "8", "1", "10"]


def test_aclimdb_single_split_folder(tmp_path: Path) -> None:
    acl = make_aclimdb(tmp_path)
    docs = load_documents(acl / "test")
    assert [(d.doc_id, d.split) for d in docs] == [("test/neg/0_1", "test"), ("test/pos/0_10", "test")]


def test_aclimdb_bad_name_and_encoding(tmp_path: Path) -> None:
    acl = make_aclimdb(tmp_path)
    write(acl / "test" / "neg" / "7_2.txt", "ok\nbad \xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"7_2\.txt, line 2: not UTF-8"):
        load_documents(acl)
    (acl / "test" / "neg" / "7_2.txt").unlink()
    write(acl / "test" / "neg" / "review.txt", "x")
    with pytest.raises(DataError, match=r"review\.txt: file name is not ID_RATING\.txt"):
        load_documents(acl)


def test_aclimdb_bad_label_column(tmp_path: Path) -> None:
    acl = make_aclimdb(tmp_path)
    with pytest.raises(DataError, match=r"'label' .* or 'rating'"):
        load_documents(acl, label_column="stars")


# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, "1"), (1.0, "1"), ("1.0", "1"), (" 3 ", "3"), ("01", "1"), (0.5, "0.5"), ("pos", "pos"),
     (True, "true")],
)
def test_normalise_label(value: object, expected: str) -> None:
    assert normalise_label(value) == expected


@pytest.mark.parametrize("value", [None, float("nan"), "", "  "])
def test_normalise_label_missing(value: object) -> None:
    with pytest.raises(DataError, match="missing label"):
        normalise_label(value)
