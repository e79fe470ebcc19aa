"""Sparse dictionaries: SAEs and transcoders trained here, read from SAELens, sparsify and
circuit-tracer, evaluated with the right formulas, spliced into the model, and browsed.

    from interplab import dictionaries as dl
    source = dl.ModelSource(model, corpus, ["L15.resid_pre"])          # or dl.harvest(...) to disk
    run = dl.train(source, {"res15": dl.DictionaryConfig("topk", d_in=576, d_sae=4608, k=32,
                                                         site="L15.resid_pre")}, out="sae/")
    report = dl.evaluate(model, run.dictionaries["res15"], corpus, name="res15")
    with dl.spliced(model, run.dictionaries) as sp:
        sp.run(prompts, capture=["L15.resid_pre.sae[res15].f12"])

Modules: `config` and `registry` (one file per architecture: `standard`, `topk`, `batchtopk`,
`jumprelu`, `matryoshka`), `sparse` (the sparse training kernels), `harvest` and `shards`
(activations), `train`, `evaluate`, `splice` and `feature_sites`, `features` (feature pages),
`formats` (interplab, SAELens, sparsify, circuit-tracer), `recipes` (the default recipe).
"""

from interplab.dictionaries.base import Dictionary, Step
from interplab.dictionaries.config import (
    ARCHITECTURES,
    KINDS,
    DictionaryConfig,
    DictionaryError,
    DictionaryFileError,
)
from interplab.dictionaries.evaluate import (
    EvalConfig,
    ce_loss_recovered,
    evaluate,
    fraction_of_variance_explained,
    holdout,
)
from interplab.dictionaries.feature_sites import FeatureSite
from interplab.dictionaries.formats import (
    FORMATS,
    detect,
    load_dictionaries,
    load_dictionary,
    save_dictionary,
)
from interplab.dictionaries.harvest import (
    HarvestConfig,
    HarvestError,
    ModelSource,
    TensorSource,
)
from interplab.dictionaries.registry import REGISTRY, build
from interplab.dictionaries.shards import ShardSource, harvest
from interplab.dictionaries.splice import FeatureEdit, Spliced, SplicedRun, spliced
from interplab.dictionaries.train import TrainConfig, TrainingRun, needed_sites, train

__all__ = [
    "ARCHITECTURES",
    "FORMATS",
    "KINDS",
    "REGISTRY",
    "Dictionary",
    "DictionaryConfig",
    "DictionaryError",
    "DictionaryFileError",
    "EvalConfig",
    "FeatureEdit",
    "FeatureSite",
    "HarvestConfig",
    "HarvestError",
    "ModelSource",
    "ShardSource",
    "Spliced",
    "SplicedRun",
    "Step",
    "TensorSource",
    "TrainConfig",
    "TrainingRun",
    "build",
    "ce_loss_recovered",
    "detect",
    "evaluate",
    "fraction_of_variance_explained",
    "harvest",
    "holdout",
    "load_dictionaries",
    "load_dictionary",
    "needed_sites",
    "save_dictionary",
    "spliced",
    "train",
]
