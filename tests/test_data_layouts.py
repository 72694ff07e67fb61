"""Folder layouts: one folder per label (20 Newsgroups, scikit-learn's load_files, train/<label>/),
and folders of data files whose names carry the split anywhere (drugsComTrain_raw.tsv).

Every test builds the folders in tmp_path from small real texts and reads them back.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from test_data_loaders import write

from attnaudit.data import DataConfig, prepare_data
from attnaudit.data.loaders import detect_format, load_documents, split_in_name
from attnaudit.data.types import DataError

# Posts in the 20 Newsgroups "bydate" style: headers, a blank line, the body.
POSTS = {
    ("train", "alt.atheism", "49960"): (
        "From: mathew <mathew@mantis.co.uk>\nSubject: Alt.Atheism FAQ: Atheist Resources\n\n"
        "Archive-name: atheism/resources\nAlt-atheism-archive-name: resources\n"
    ),
    ("train", "alt.atheism", "51060"): (
        "From: bobbe@vice.ICO.TEK.COM (Robert Beauchaine)\nSubject: Re: Bennett, Mormons\n\n"
        "The argument from design is not an argument at all.\n"
    ),
    ("train", "sci.space", "61116"): (
        "From: henry@zoo.toronto.edu (Henry Spencer)\nSubject: Re: Space Station Redesign\n\n"
        "The station design keeps changing; the budget does not.\n"
    ),
    ("test", "alt.atheism", "53068"): (
        "From: kmr4@po.CWRU.edu (Keith M. Ryan)\nSubject: Re: Morality\n\n"
        "Objective morality is a claim, not a demonstration.\n"
    ),
    ("test", "sci.space", "61552"): (
        "From: prb@access.digex.com (Pat)\nSubject: Re: Orbital launch costs\n\n"
        "Launch costs dominate everything else in the budget.\n"
    ),
}


def make_20news(root: Path) -> Path:
    """``root/20news-bydate-{train,test}/<group>/<id>``, files without extension, as shipped."""
    for (split, group, doc), text in POSTS.items():
        write(root / f"20news-bydate-{split}" / group / doc, text)
    # A Latin-1 post (no valid UTF-8), as some 1990s Usenet posts are, and macOS litter.
    write(
        root / "20news-bydate-train" / "sci.space" / "61117",
        "Subject: Re: Ariane\n\nThe caf\xe9 at Kourou serves the launch crews.\n".encode("latin-1"),
    )
    write(root / "20news-bydate-train" / "sci.space" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    return root


# ---------------------------------------------------------------------------------------------------
# One folder per label


def test_20news_bydate_layout(tmp_path: Path) -> None:
    root = make_20news(tmp_path / "news")
    assert detect_format(root) == "folders"
    docs = load_documents(root)
    assert [(d.doc_id, d.label, d.split) for d in docs] == [
        ("train/alt.atheism/49960", "alt.atheism", "train"),
        ("train/alt.atheism/51060", "alt.atheism", "train"),
        ("train/sci.space/61116", "sci.space", "train"),
        ("train/sci.space/61117", "sci.space", "train"),
        ("test/alt.atheism/53068", "alt.atheism", "test"),
        ("test/sci.space/61552", "sci.space", "test"),
    ]
    by_id = {d.doc_id: d.text for d in docs}
    assert by_id["train/sci.space/61116"] == POSTS[("train", "sci.space", "61116")]
    assert "The café at Kourou" in by_id["train/sci.space/61117"]  # read as Latin-1
    assert load_documents(root, fmt="folders") == docs


def test_20news_split_folder_alone_takes_split_from_its_name(tmp_path: Path) -> None:
    root = make_20news(tmp_path / "news")
    docs = load_documents(root / "20news-bydate-test")
    assert [(d.doc_id, d.split) for d in docs] == [
        ("test/alt.atheism/53068", "test"), ("test/sci.space/61552", "test"),
    ]


def test_train_and_test_folders_with_labels_inside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "reviews"
    write(root / "train" / "positive" / "a.txt", "A warm, funny film.")
    write(root / "train" / "negative" / "b.txt", "Two hours I will not get back.")
    write(root / "Test" / "positive" / "c.txt", "Wonderful from start to end.")
    write(root / "Test" / "negative" / "d.txt", "Flat and dull.")
    write(root / "README.md", "Reviews, one file each.")
    write(root / "scraps" / "misc" / "e.txt", "Not part of any split.")
    write(root / "unlabelled" / "f.txt", "No label folder above this one.")
    assert detect_format(root) == "folders"
    with caplog.at_level(logging.WARNING, logger="attnaudit.data.loaders"):
        docs = load_documents(root)
    assert [(d.doc_id, d.label, d.split, d.text) for d in docs] == [
        ("train/negative/b.txt", "negative", "train", "Two hours I will not get back."),
        ("train/positive/a.txt", "positive", "train", "A warm, funny film."),
        ("test/negative/d.txt", "negative", "test", "Flat and dull."),
        ("test/positive/c.txt", "positive", "test", "Wonderful from start to end."),
    ]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.endswith(
        "reviews: ignoring folder(s) that name no split or hold no label folders: scraps, unlabelled"
    )


def make_load_files(root: Path, per_label: int = 10) -> Path:
    """scikit-learn's ``load_files`` layout with Pang & Lee style names (pos/neg, not ID_RATING)."""
    good = ["a moving story", "sharp writing", "great acting", "a joy to watch", "clever and kind"]
    bad = ["a tedious plot", "wooden acting", "far too long", "a waste of time", "dull and loud"]
    for i in range(per_label):
        write(root / "pos" / f"cv{i:03d}_{29416 + i}.txt", f"This film has {good[i % 5]}. I liked it.")
        write(root / "neg" / f"cv{i:03d}_{19502 + i}.txt", f"This film has {bad[i % 5]}. I hated it.")
    return root


def test_load_files_layout_has_no_split_and_prepare_carves_one(tmp_path: Path) -> None:
    root = make_load_files(tmp_path / "txt_sentoken")
    # pos/neg folders, but not aclImdb's ID_RATING.txt names: read per label folder.
    assert detect_format(root) == "folders"
    docs = load_documents(root)
    assert len(docs) == 20 and {d.split for d in docs} == {None}
    assert docs[0].doc_id == "neg/cv000_19502.txt" and docs[0].label == "neg"
    assert docs[0].text == "This film has a tedious plot. I hated it."
    data = prepare_data(DataConfig(path=str(root), min_count=1, seed=0))
    assert data.label_names == ["neg", "pos"]
    assert (len(data.train), len(data.dev), len(data.test)) == (16, 2, 2)


def test_natural_file_order(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for name in ("10", "9", "100"):
        write(root / "ham" / name, f"message {name}")
        write(root / "spam" / name, f"offer {name}")
    assert [d.doc_id for d in load_documents(root)][:3] == ["ham/9", "ham/10", "ham/100"]


def test_folders_refuse_two_split_words_in_a_folder_name(tmp_path: Path) -> None:
    write(tmp_path / "data" / "train_test" / "sport" / "1", "The match ended in a draw.")
    with pytest.raises(DataError, match=r"train_test: the name gives 2 splits \(test, train\)"):
        load_documents(tmp_path / "data")


def test_folders_refuse_two_folders_of_one_split(tmp_path: Path) -> None:
    write(tmp_path / "data" / "train" / "sport" / "1", "The match ended in a draw.")
    write(tmp_path / "data" / "20news-bydate-train" / "sport" / "2", "A late goal won it.")
    expected = r"data: folders 20news-bydate-train and train both give the train split"
    with pytest.raises(DataError, match=expected):
        load_documents(tmp_path / "data")


def test_folders_refuse_binary_file(tmp_path: Path) -> None:
    root = make_load_files(tmp_path / "corpus", per_label=2)
    write(root / "pos" / "cover.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF")
    with pytest.raises(DataError, match=r"cover\.jpg: not a text file \(NUL byte at offset 4\)"):
        load_documents(root)


def test_folders_refuse_column_options(tmp_path: Path) -> None:
    root = make_load_files(tmp_path / "corpus", per_label=2)
    with pytest.raises(DataError, match=r"corpus: the folders format takes labels from folder names"):
        load_documents(root, label_column="rating")


def test_folders_format_on_something_else(tmp_path: Path) -> None:
    f = write(tmp_path / "flat" / "notes.txt", "no label folders here")
    with pytest.raises(DataError, match=r"flat: no folder per label found"):
        load_documents(tmp_path / "flat", fmt="folders")
    with pytest.raises(DataError, match=r"notes\.txt: the folders format reads a folder"):
        load_documents(f, fmt="folders")
    with pytest.raises(DataError, match=r"flat: no data found \(.*one folder per label"):
        load_documents(tmp_path / "flat")


def test_aclimdb_with_its_extra_files_still_detects_as_aclimdb(tmp_path: Path) -> None:
    acl = tmp_path / "aclImdb"
    write(acl / "train" / "pos" / "0_9.txt", "Bromwell High is a cartoon comedy.")
    write(acl / "train" / "neg" / "0_3.txt", "Story of a man who has unnatural feelings.")
    write(acl / "train" / "unsup" / "0_0.txt", "I admit, the great majority of films...")
    write(acl / "train" / "urls_pos.txt", "http://www.imdb.com/title/tt0453418/usercomments\n")
    write(acl / "train" / "labeledBow.feat", "9 0:9 1:1 2:4\n")
    write(acl / "train" / "unsupBow.feat", "0 0:8 1:6\n")
    write(acl / "test" / "pos" / "0_10.txt", "I went and saw this movie last night.")
    write(acl / "test" / "neg" / "0_2.txt", "Once again Mr. Costner has dragged out a movie.")
    write(acl / "test" / "urls_neg.txt", "http://www.imdb.com/title/tt0064354/usercomments\n")
    write(acl / "imdb.vocab", "the\nand\n")
    write(acl / "imdbEr.txt", "0.0490972013402\n")
    write(acl / "README", "Large Movie Review Dataset v1.0\n")
    for path in (acl, tmp_path, acl / "train"):
        assert detect_format(path) == "aclimdb"
    docs = load_documents(tmp_path, label_column="rating")
    assert [(d.doc_id, d.label, d.split) for d in docs] == [
        ("train/neg/0_3", "3", "train"), ("train/pos/0_9", "9", "train"),
        ("test/neg/0_2", "2", "test"), ("test/pos/0_10", "10", "test"),
    ]


# ---------------------------------------------------------------------------------------------------
# Folders of data files with the split in their names


DRUGS_HEADER = "\tdrugName\tcondition\treview\trating\tdate\tusefulCount\n"


def test_drugs_com_tsv_files_split_from_names(tmp_path: Path) -> None:
    root = tmp_path / "drugsCom"
    write(root / "drugsComTrain_raw.tsv", DRUGS_HEADER
          + '206461\tValsartan\tLeft Ventricular Dysfunction\t"""It has no side effect, '
            'I take it in combination of Bystolic 5 Mg and Fish Oil"""\t9.0\tMay 20, 2012\t27\n'
          + '95260\tGuanfacine\tADHD\t"""My son is halfway through his fourth week of '
            'Intuniv."""\t8.0\tApril 27, 2010\t192\n')
    write(root / "drugsComTest_raw.tsv", DRUGS_HEADER
          + '163740\tMirtazapine\tDepression\t"""I&#039;ve tried a few antidepressants '
            'over the years, all useless."""\t10.0\tFebruary 28, 2012\t22\n')
    assert detect_format(root, text_column="review", label_column="rating") == "csv"
    docs = load_documents(root, text_column="review", label_column="rating")
    assert [(d.doc_id, d.label, d.split) for d in docs] == [
        ("test/0", "10", "test"), ("train/0", "9", "train"), ("train/1", "8", "train"),
    ]
    # Read with tabs: the commas inside the review stay in it.
    assert docs[1].text == (
        '"It has no side effect, I take it in combination of Bystolic 5 Mg and Fish Oil"'
    )


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("20news-bydate-train", "train"),
        ("drugsComTrain_raw.tsv", "train"),
        ("drugsComTest_raw.tsv", "test"),
        ("TEST.csv", "test"),
        ("IMDBTest.csv", "test"),
        ("imdb_validation.jsonl", "dev"),
        ("sst2.valid.jsonl", "dev"),
        ("dev2.csv", "dev"),
        ("train-00000-of-00002.parquet", "train"),
        ("ag_news_testing.csv", "test"),
        ("latest.csv", None),  # "test" inside a word is no split
        ("contest", None),
        ("restrained.tsv", None),
        ("reviews.csv", None),
    ],
)
def test_split_in_name(name: str, split: str | None) -> None:
    assert split_in_name(Path(name)) == split


def test_file_naming_two_splits_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "d" / "train.csv", "text,label\ngood,1\n")
    write(tmp_path / "d" / "train_test_split.csv", "text,label\nbad,0\n")
    with pytest.raises(DataError, match=r"train_test_split\.csv: the name gives 2 splits"):
        load_documents(tmp_path / "d")


def test_two_files_of_one_split_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "d" / "drugsComTrain_raw.tsv", "review\trating\nHelped a lot.\t9\n")
    write(tmp_path / "d" / "drugsComTrain_sample.tsv", "review\trating\nHelped.\t9\n")
    write(tmp_path / "d" / "drugsComTest_raw.tsv", "review\trating\nUseless.\t1\n")
    expected = (r"d: drugsComTrain_raw\.tsv and drugsComTrain_sample\.tsv both give the train "
                r"split; keep one of them")
    with pytest.raises(DataError, match=expected):
        load_documents(tmp_path / "d", text_column="review", label_column="rating")


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


def test_numbered_shards_of_one_split_are_read_together(tmp_path: Path) -> None:
    data = tmp_path / "hub" / "data"
    write_jsonl(data / "train-00000-of-00002-5b4a1c9e.jsonl", [{"text": "fine", "label": 1}])
    write_jsonl(data / "train-00001-of-00002-a09b7f3d.jsonl", [{"text": "poor", "label": 0}])
    write_jsonl(data / "test-00000-of-00001-77e0c2aa.jsonl", [{"text": "okay", "label": 1}])
    docs = load_documents(tmp_path / "hub")
    assert [(d.doc_id, d.text) for d in docs] == [
        ("test/0", "okay"), ("train/0", "fine"), ("train/1", "poor"),
    ]


def test_split_from_the_subfolder_name(tmp_path: Path) -> None:
    root = tmp_path / "default"
    write_jsonl(root / "train" / "0000.jsonl", [{"text": "fine", "label": 1}])
    write_jsonl(root / "validation" / "0000.jsonl", [{"text": "poor", "label": 0}])
    write_jsonl(root / "test" / "0000.jsonl", [{"text": "okay", "label": 1}])
    docs = load_documents(root)
    assert [(d.doc_id, d.split) for d in docs] == [
        ("test/0", "test"), ("train/0", "train"), ("dev/0", "dev"),
    ]


def test_file_naming_no_split_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "kaggle" / "train.csv", "text,label\nwhat a match,sport\nrates rise,business\n")
    write(tmp_path / "kaggle" / "test.csv", "text,label\nlate goal,sport\n")
    write(tmp_path / "kaggle" / "sample_submission.csv", "id,label\n0,sport\n")
    with caplog.at_level(logging.WARNING, logger="attnaudit.data.loaders"):
        docs = load_documents(tmp_path / "kaggle")
    assert [(d.split, d.text) for d in docs] == [
        ("test", "late goal"), ("train", "what a match"), ("train", "rates rise"),
    ]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipping 1 file(s) whose name gives no split" in warning
    assert "sample_submission.csv" in warning


def test_the_docs_bad_csv_example_is_the_message_printed(tmp_path: Path) -> None:
    """The data formats page quotes the error a ragged CSV gives; it must be the one the loader
    prints."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text(encoding="utf-8")
    quoted = re.search(r"`(reviews\.csv, line 17: [^`]+)`", page)
    assert quoted is not None, "docs/data.md no longer quotes the bad-CSV example"
    rows = [f'{1 + i % 2},"review number {i}"' for i in range(16)] + ["1,a,b,c,d"]
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_documents(tmp_path / "reviews.csv")
    assert str(err.value).endswith(quoted.group(1)), str(err.value)
