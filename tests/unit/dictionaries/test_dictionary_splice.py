"""Splicing: exact with the error term, feature edits equal their direct interventions."""

import pytest
import torch

from interplab.core import Add, Apply
from interplab.dictionaries import DictionaryConfig, DictionaryError, build, spliced
from interplab.sites import Site

from helpers import tiny_model, tokens

SITE = Site(1, "resid_pre")
MLP_IN, MLP_OUT = Site(0, "mlp.in"), Site(0, "mlp_out")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def sae():
    d = build(DictionaryConfig("topk", d_in=64, d_sae=256, k=8, site=SITE), seed=0).eval()
    with torch.no_grad():
        d.b_dec.copy_(torch.randn(64, generator=torch.Generator().manual_seed(5)))
    return d


def transcoder():
    c = DictionaryConfig(
        "jumprelu",
        d_in=64,
        d_sae=128,
        kind="skip_transcoder",
        d_out=64,
        site=MLP_IN,
        target=MLP_OUT,
    )
    d = build(c, seed=1).eval()
    with torch.no_grad():
        d.W_skip.copy_(0.1 * torch.randn(64, 64, generator=torch.Generator().manual_seed(6)))
    return d


def test_with_the_error_term_the_outputs_are_exactly_unchanged(model):
    ids = tokens(3, 12)
    clean = model.forward(ids)
    with spliced(model, {"res": sae(), "tc": transcoder()}) as sp:
        assert torch.equal(model.forward(ids), clean)
        run = sp.run(ids, capture=["L1.resid_pre.sae[res]", "L0.mlp_out.sae[tc].f5", SITE, MLP_IN])
    assert torch.equal(run.logits, clean)
    assert torch.equal(run["L1.resid_pre.sae[res]"], sae().encode(run.cache[SITE]))
    assert torch.equal(run["L0.mlp_out.sae[tc].f5"], transcoder().encode(run.cache[MLP_IN])[..., 5])


def test_ablating_a_feature_equals_subtracting_its_decoder_row(model):
    ids = tokens(2, 10)
    d = sae()
    with spliced(model, {"res": d}) as sp:
        f = sp.capture(ids, ["L1.resid_pre.sae[res]"])
        feature = int(f[next(iter(f))][0, 4].argmax())
        fs = sp.feature_site("res", feature)
        edited = sp.run(ids, edits=[sp.ablate(fs, positions=[4])], capture=[fs])
    acts = f[next(iter(f))][..., feature]
    delta = torch.zeros(2, 10, 64)
    delta[:, 4] = -acts[:, 4, None] * d.W_dec[feature].detach()
    reference = model.run(ids, interventions=[Add(SITE, delta)]).logits
    assert torch.allclose(edited.logits, reference, atol=1e-5)
    assert bool((edited[fs][:, 4] == 0).all()) and torch.equal(edited[fs][:, 5], acts[:, 5])


def test_steering_adds_the_decoder_row(model):
    ids = tokens(2, 10)
    d = sae()
    with spliced(model, {"res": d}) as sp:
        steered = sp.run(ids, edits=[sp.steer("L1.resid_pre.sae[res].f3", 4.0)])
    reference = model.run(ids, interventions=[Add(SITE, 4.0 * d.W_dec[3].detach())]).logits
    assert torch.allclose(steered.logits, reference, atol=1e-5)


def test_without_the_error_term_the_site_is_the_reconstruction(model):
    ids = tokens(2, 10)
    d = sae()

    def recon(x):
        out = d(x).detach()
        out[:, :1] = x[:, :1]
        return out

    reference = model.run(ids, interventions=[Apply(SITE, recon)]).logits
    with spliced(model, {"res": d}, error=False) as sp:
        assert torch.allclose(sp.run(ids).logits, reference, atol=1e-6)
    with spliced(model, {"res": d}) as sp:  # ablating the error term is the same edit
        no_error = sp.run(
            ids, edits=[sp.ablate("L1.resid_pre.sae[res].error", positions=range(1, 10))]
        )
    assert torch.allclose(no_error.logits, reference, atol=1e-4)


def test_a_transcoder_replaces_the_mlp(model):
    ids = tokens(2, 10)
    d = transcoder()
    clean = model.run(ids, capture=[MLP_IN])

    def recon(out):
        new = d(clean.cache[MLP_IN]).detach()
        new[:, :1] = out[:, :1]
        return new

    reference = model.run(ids, interventions=[Apply(MLP_OUT, recon)]).logits
    with spliced(model, {"tc": d}, error=False) as sp:
        assert torch.allclose(sp.run(ids).logits, reference, atol=1e-5)


def test_mismatched_dictionaries_and_unknown_features_are_refused(model):
    wide = build(DictionaryConfig("topk", d_in=32, d_sae=64, k=4, site=SITE))
    with (
        pytest.raises(
            DictionaryError, match=r"d_in=32, but L1.resid_pre of tiny-llama has width 64"
        ),
        spliced(model, {"wide": wide}),
    ):
        pass
    loose = build(DictionaryConfig("topk", d_in=64, d_sae=64, k=4))
    with (
        pytest.raises(DictionaryError, match="not tied to a site"),
        spliced(model, {"loose": loose}),
    ):
        pass
    with spliced(model, {"res": sae()}) as sp:
        with pytest.raises(DictionaryError, match="no dictionary 'other'"):
            sp.ablate("L1.resid_pre.sae[other].f1")
        with pytest.raises(DictionaryError, match=r"features 0..255"):
            sp.ablate("L1.resid_pre.sae[res].f999")
        with pytest.raises(DictionaryError, match=r"spliced at L1.resid_pre"):
            sp.ablate("L0.resid_pre.sae[res].f1")
    with (
        spliced(model, {"res": sae()}, error=False) as sp,
        pytest.raises(DictionaryError, match="error=True"),
    ):
        sp.run(tokens(1, 5), edits=[sp.ablate("L1.resid_pre.sae[res].error")])
