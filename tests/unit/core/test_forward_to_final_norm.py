"""`Model.forward_to_final_norm`: the captures of a full forward, without the unembedding."""

from __future__ import annotations

import torch

from interplab.sites import Site

from helpers import tiny_model, tokens


def test_it_captures_what_a_full_forward_captures_and_skips_the_unembedding():
    model = tiny_model("llama")
    ids = tokens(batch=2, length=6)
    sites = [Site(1, "resid_post"), Site(None, "final_norm")]
    with model.capture(sites) as full:
        model.forward(ids)
    calls = []
    unembed = model.hf.get_output_embeddings()
    handle = unembed.register_forward_hook(lambda *a: calls.append(1))
    try:
        with model.capture(sites) as short:
            assert model.forward_to_final_norm(ids) is None
    finally:
        handle.remove()
    assert not calls, "the unembedding ran"
    for s in sites:
        assert torch.equal(short[s], full[s])
    assert not model.hooked_modules()  # nothing left behind
    assert torch.equal(model.forward(ids), tiny_model("llama").forward(ids))
