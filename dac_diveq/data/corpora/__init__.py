"""Real speech corpora for the GPU recipes: LibriTTS, LibriSpeech, VCTK and DAPS, prepared from an
extracted copy or their official locations into the folders the confs read (``conf/data/``).

See :mod:`.prepare` for the output layout, :mod:`.catalog` for sources, licences and splits, and
``scripts/prepare_data.py --corpus``.
"""
from .catalog import CORPORA, SPLITS, Archive, Corpus
from .errors import CorpusError
from .prepare import (DEFAULT_OUTPUT, HELD_OUT, TEST_LIST, TEST_LIST_FOLDER, command, estimate,
                      missing_data_hint, prepare_corpus, read_test_list)

__all__ = ["Archive", "CORPORA", "Corpus", "CorpusError", "DEFAULT_OUTPUT", "HELD_OUT", "SPLITS", "TEST_LIST",
           "TEST_LIST_FOLDER", "command", "estimate", "missing_data_hint", "prepare_corpus", "read_test_list"]
