"""Loading with a device_map (accelerate): the layers spread over devices compute what the plain
model computes. Here the only devices are the CPU and the disk: the last ten layers are offloaded
to disk and read back at every forward, which runs the same dispatch hooks a multi-GPU map runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interplab as ip
from interplab.core.weights import WeightsOffloaded
from interplab.errors import UserError
from interplab.sites import Site

pytestmark = pytest.mark.slow

PROMPTS = ["When Mary and John went to the store, John gave a drink to", "The Eiffel Tower is in"]


@pytest.fixture(scope="module")
def mapped(smol):
    n = smol.dims.n_layers
    device_map = {"model.embed_tokens": "cpu", "model.norm": "cpu", "lm_head": "cpu"}
    device_map["model.rotary_emb"] = "cpu"
    device_map.update({f"model.layers.{i}": "cpu" if i < n - 10 else "disk" for i in range(n)})
    return ip.load(device_map=device_map)


def test_a_mapped_model_gives_the_plain_models_logits_and_activations(smol, mapped):
    assert mapped.info.device == "map:cpu,disk"
    sites = [Site(3, "resid_post"), Site(25, "attn.z"), Site(29, "mlp.post")]
    torch.set_num_threads(1)
    with torch.inference_mode():
        a = smol.run(PROMPTS, capture=sites)
        b = mapped.run(PROMPTS, capture=sites)
    assert torch.equal(a.logits, b.logits)
    for s in sites:
        assert torch.equal(a.cache[s], b.cache[s])


def test_patching_on_a_mapped_model_equals_the_plain_model(smol, mapped):
    from interplab.data import ContrastPair
    from interplab.techniques.patching import activation_patching

    torch.set_num_threads(1)
    pairs = [
        ContrastPair(
            PROMPTS[0], PROMPTS[0].replace("Mary and John", "John and Mary"), " Mary", " John"
        )
    ]
    kw = {"components": ("attn.z",), "per": "all", "control": False, "progress": False}
    ref = activation_patching(smol, pairs, **kw)
    got = activation_patching(mapped, pairs, **kw)
    assert got.method == ref.method
    assert np.array_equal(got.effects["attn.z"], ref.effects["attn.z"])


def test_the_weight_api_refuses_offloaded_layers_and_reads_the_others(smol, mapped):
    assert torch.equal(mapped.weights.W_O(0), smol.weights.W_O(0))
    with pytest.raises(WeightsOffloaded, match="offloaded to disk"):
        mapped.weights.W_O(25)


def test_bad_device_maps_are_refused_with_the_valid_forms():
    with pytest.raises(UserError, match="not one of auto, balanced"):
        ip.load(device_map="everywhere")
    with pytest.raises(UserError, match="pass device_map too"):
        ip.load(max_memory={"cpu": "1GiB"})
