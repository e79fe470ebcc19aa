"""Our sparsify files read by sparsify, and sparsify's files read by us."""

import pytest
import torch

from conftest import sparsify_module
from interplab.dictionaries import DictionaryConfig, build, load_dictionary, save_dictionary
from interplab.sites import Site

pytestmark = pytest.mark.slow


def dense(top_acts, top_indices, d_sae):
    return torch.zeros(*top_acts.shape[:-1], d_sae).scatter(-1, top_indices, top_acts)


@pytest.mark.parametrize("kind", ["sae", "transcoder", "skip_transcoder"])
def test_sparsify_reads_what_we_write(tmp_path, kind):
    sparsify = sparsify_module()
    sae = kind == "sae"
    config = DictionaryConfig(
        "topk",
        d_in=24,
        d_sae=96,
        k=6,
        kind=kind,
        d_out=None if sae else 24,  # type: ignore[arg-type]
        site=Site(4, "resid_post") if sae else Site(4, "mlp.in"),
        target=None if sae else Site(4, "mlp_out"),
    )
    ours = build(config, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ours.b_enc.copy_(torch.randn(96, generator=g) * 0.1)
        ours.b_dec.copy_(torch.randn(24, generator=g))
        if ours.W_skip is not None:
            ours.W_skip.copy_(torch.randn(24, 24, generator=g) * 0.1)
    folder = tmp_path / ("layers.4" if sae else "layers.4.mlp")
    save_dictionary(ours, folder, "sparsify")
    peer = sparsify.SparseCoder.load_from_disk(folder)
    x = torch.randn(40, 24, generator=g)
    with torch.no_grad():
        out = peer.encode(x)
        f = dense(out.top_acts, out.top_indices, 96)
        assert torch.allclose(f, ours.encode(x), atol=1e-5)
        recon = peer.decode(out.top_acts, out.top_indices)
        if peer.W_skip is not None:
            recon = recon + x @ peer.W_skip.mT
        assert torch.allclose(recon, ours(x), atol=1e-5)


@pytest.mark.parametrize("transcode", [False, True])
def test_we_read_what_sparsify_writes(tmp_path, transcode):
    sparsify = sparsify_module()
    cfg = sparsify.SparseCoderConfig(
        k=5, num_latents=80, transcode=transcode, skip_connection=transcode
    )
    peer = sparsify.SparseCoder(24, cfg)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    folder = tmp_path / ("layers.7.mlp" if transcode else "layers.7")
    peer.save_to_disk(folder)
    ours = load_dictionary(folder)
    assert ours.site == (Site(7, "mlp.in") if transcode else Site(7, "resid_post"))
    x = torch.randn(40, 24, generator=g)
    with torch.no_grad():
        out = peer.encode(x)
        assert torch.allclose(ours.encode(x), dense(out.top_acts, out.top_indices, 80), atol=1e-5)
        recon = peer.decode(out.top_acts, out.top_indices)
        if peer.W_skip is not None:
            recon = recon + x @ peer.W_skip.mT
        assert torch.allclose(ours(x), recon, atol=1e-5)
