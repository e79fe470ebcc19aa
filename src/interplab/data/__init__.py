"""interplab.data: offline text assets, contrast-pair tasks, labelled datasets and corpora.

Every dataset comes from files on disk (the gensim wheel's test data, or the user's own files);
nothing is downloaded. Importing this package reads no files and touches no cache.
"""

from interplab.data.alignment import (
    AlignmentError,
    check_aligned,
    check_single_token_answers,
    single_token_id,
    token_length,
)
from interplab.data.assets import (
    ASSET_FILES,
    AssetName,
    AssetNotFoundError,
    CapitalPair,
    PolaritySentence,
    WikiArticle,
    asset_path,
    capital_pairs,
    gensim_test_data_dir,
    lee_documents,
    polarity_sentences,
    wiki_articles,
)
from interplab.data.austen import (
    AUSTEN_BOOKS,
    AustenNotFoundError,
    austen_corpus_path,
    austen_novels,
    austen_package_dir,
)
from interplab.data.cache import (
    atomic_write,
    atomic_write_text,
    cache_root,
    data_cache_dir,
    sha256_file,
)
from interplab.data.corpus import (
    CorpusName,
    TokenizedCorpus,
    iter_corpus,
    tokenize_corpus,
    tokenizer_fingerprint,
)
from interplab.data.factual import FACTUAL_TEMPLATES, FactualConfig, factual_pairs
from interplab.data.induction import induction_pairs, induction_tokens, word_token_pool
from interplab.data.ioi import IOI_NAMES, IOI_TEMPLATES, IOIConfig, ioi_pairs
from interplab.data.labelled import (
    TRUTH_PHRASINGS,
    LabelledDataset,
    LabelledFileError,
    LabelledSplit,
    load_labelled,
    sentiment_dataset,
    truth_dataset,
)
from interplab.data.pairs import (
    ContrastPair,
    PairDataset,
    PairFileError,
    load_pairs,
    pairs_hash,
)
from interplab.data.sentiment_prompts import HAPPY_PROMPTS, NEUTRAL_PROMPTS, SAD_PROMPTS
from interplab.data.wikitext import wikitext_to_paragraphs

__all__ = [
    "ASSET_FILES",
    "AUSTEN_BOOKS",
    "FACTUAL_TEMPLATES",
    "HAPPY_PROMPTS",
    "IOI_NAMES",
    "IOI_TEMPLATES",
    "NEUTRAL_PROMPTS",
    "SAD_PROMPTS",
    "TRUTH_PHRASINGS",
    "AlignmentError",
    "AssetName",
    "AssetNotFoundError",
    "AustenNotFoundError",
    "CapitalPair",
    "ContrastPair",
    "CorpusName",
    "FactualConfig",
    "IOIConfig",
    "LabelledDataset",
    "LabelledFileError",
    "LabelledSplit",
    "PairDataset",
    "PairFileError",
    "PolaritySentence",
    "TokenizedCorpus",
    "WikiArticle",
    "asset_path",
    "atomic_write",
    "atomic_write_text",
    "austen_corpus_path",
    "austen_novels",
    "austen_package_dir",
    "cache_root",
    "capital_pairs",
    "check_aligned",
    "check_single_token_answers",
    "data_cache_dir",
    "factual_pairs",
    "gensim_test_data_dir",
    "induction_pairs",
    "induction_tokens",
    "ioi_pairs",
    "iter_corpus",
    "lee_documents",
    "load_labelled",
    "load_pairs",
    "pairs_hash",
    "polarity_sentences",
    "sentiment_dataset",
    "sha256_file",
    "single_token_id",
    "token_length",
    "tokenize_corpus",
    "tokenizer_fingerprint",
    "truth_dataset",
    "wiki_articles",
    "wikitext_to_paragraphs",
    "word_token_pool",
]
