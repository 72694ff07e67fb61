"""Read labelled documents from the formats in which public text-classification sets are shipped.

Formats (``fmt``):

- ``zhang-csv``: Zhang et al. (2015) CSVs, no header: ``label,text``, ``label,title,text`` or Yahoo
  Answers' ``label,question_title,question_content,best_answer``; labels ``1..K``. The text fields are
  joined with line breaks. A folder with ``train.csv``/``test.csv`` gives those splits.
- ``aclimdb``: the ``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt`` folders (``unsup`` is ignored).
  Labels ``pos``/``neg``, or the star rating with ``label_column="rating"``.
- ``folders``: one folder per label holding one text file per document, the label being the folder
  name: scikit-learn's ``load_files`` layout ``<root>/<label>/<file>`` (no split), or that layout
  inside split folders, ``<root>/train/<label>/<file>`` or 20 Newsgroups' ``20news-bydate-train/``
  and ``20news-bydate-test/`` (the split word may be anywhere in the folder name). Files need no
  extension; hidden files are skipped.
- ``hf-disk``: a Hugging Face ``datasets`` folder written by ``save_to_disk`` (a ``DatasetDict`` or a
  single ``Dataset``), read with pyarrow alone. ``ClassLabel`` ids become their names.
- ``parquet``, ``jsonl`` (also ``.jsonl.gz``, ``.ndjson``, JSON-lines ``.json``), ``csv`` (with a
  header; ``.tsv`` is tab-separated): named text, label and optional id columns, and a ``split``
  column if present.

A folder of ``parquet``/``jsonl``/``csv`` files takes each file's split from a split word anywhere in
its name (``train``/``training``, ``dev``/``val``/``valid``/``validation``, ``test``/``testing``, as a
word of its own: ``train-00000-of-00002.parquet``, ``drugsComTrain_raw.tsv``), or else from the name of
the sub-folder holding it (``default/train/0000.parquet``). Several files of one split are read
together only when they are numbered shards of it; files naming no split are skipped with a warning.

Every problem with the input raises :class:`DataError` with a one-line message that names the file and
the line (or row, or field). Loaders only read; nothing is written.

The package has one module per format family (:mod:`~attnaudit.data.loaders.csv_files`,
:mod:`~attnaudit.data.loaders.jsonl`, :mod:`~attnaudit.data.loaders.parquet`,
:mod:`~attnaudit.data.loaders.hf_disk`, :mod:`~attnaudit.data.loaders.aclimdb`,
:mod:`~attnaudit.data.loaders.folders`), the shared pieces in :mod:`~attnaudit.data.loaders.common`
and :mod:`~attnaudit.data.loaders.files`, and the registry of formats with detection and
:func:`load_documents` in :mod:`~attnaudit.data.loaders.registry`. Adding a format: one module, one
line in :data:`READERS` (and one in :data:`DETECTORS` to detect it).
"""

from attnaudit.data.loaders.common import logger, normalise_label, normalise_split
from attnaudit.data.loaders.files import split_in_name
from attnaudit.data.loaders.registry import (
    DETECTORS,
    FORMATS,
    READERS,
    detect_format,
    load_documents,
)
from attnaudit.data.types import DataError, Document

__all__ = [
    "DETECTORS",
    "FORMATS",
    "READERS",
    "DataError",
    "Document",
    "detect_format",
    "load_documents",
    "logger",
    "normalise_label",
    "normalise_split",
    "split_in_name",
]
