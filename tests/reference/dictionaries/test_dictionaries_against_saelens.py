"""Our SAELens files read by SAELens, and SAELens's files read by us: same encodings, decodings."""

import pytest
import torch

from conftest import sae_lens_module
from interplab.dictionaries import DictionaryConfig, build, load_dictionary, save_dictionary
from interplab.sites import Site

pytestmark = pytest.mark.slow


def filled(config: DictionaryConfig):
    d = build(config, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        d.b_enc.copy_(torch.randn(d.d_sae, generator=g) * 0.1)
        d.b_dec.copy_(torch.randn(d.d_out, generator=g))
        if d.W_skip is not None:
            d.W_skip.copy_(torch.randn(d.d_out, d.d_in, generator=g) * 0.1)
        if getattr(d, "threshold", None) is not None:
            d.threshold.copy_(torch.rand(d.d_sae, generator=g) * 0.3)
    return d


OURS = [
    ("standard", "sae", "standard"),
    ("topk", "sae", "topk"),
    ("jumprelu", "sae", "jumprelu"),
    ("batchtopk", "sae", "jumprelu"),
    ("matryoshka_batchtopk", "sae", "jumprelu"),
    ("standard", "transcoder", "transcoder"),
    ("standard", "skip_transcoder", "skip_transcoder"),
    ("jumprelu", "transcoder", "jumprelu_transcoder"),
    ("batchtopk", "skip_transcoder", "jumprelu_skip_transcoder"),
]


@pytest.mark.parametrize(("arch", "kind", "theirs"), OURS)
def test_saelens_reads_what_we_write(tmp_path, arch, kind, theirs):
    sae_lens = sae_lens_module()
    sae = kind == "sae"
    config = DictionaryConfig(
        arch,
        d_in=24,
        d_sae=64,
        k=6,
        kind=kind,
        d_out=None if sae else 20,  # type: ignore[arg-type]
        site=Site(3, "resid_post") if sae else Site(3, "mlp.in"),
        target=None if sae else Site(3, "mlp_out"),
    )
    ours = filled(config)
    save_dictionary(ours, tmp_path, "saelens", model_name="smollm2-135m")
    peer = sae_lens.SAE.load_from_disk(tmp_path)
    assert peer.cfg.architecture() == theirs
    assert peer.cfg.metadata.hook_name == (
        "blocks.3.hook_resid_post" if sae else "blocks.3.ln2.hook_normalized"
    )
    x = torch.randn(50, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        f = peer.encode(x)
        assert torch.allclose(f, ours.encode(x), atol=1e-5)
        assert torch.allclose(peer.decode(f), ours.decode(f), atol=1e-5)
        assert torch.allclose(peer(x), ours(x), atol=1e-5)


def _peer(sae_lens, arch: str, **extra):
    from sae_lens.saes.sae import SAEMetadata

    classes = {
        "standard": ("StandardSAE", "StandardSAEConfig"),
        "topk": ("TopKSAE", "TopKSAEConfig"),
        "jumprelu": ("JumpReLUSAE", "JumpReLUSAEConfig"),
        "skip_transcoder": ("SkipTranscoder", "SkipTranscoderConfig"),
        "jumprelu_transcoder": ("JumpReLUTranscoder", "JumpReLUTranscoderConfig"),
    }
    cls, cfg_cls = (getattr(sae_lens, n) for n in classes[arch])
    meta = SAEMetadata(hook_name="blocks.2.hook_resid_mid", hook_name_out="blocks.2.hook_mlp_out")
    peer = cls(cfg_cls(d_in=24, d_sae=64, metadata=meta, **extra))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in peer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        if hasattr(peer, "threshold"):
            peer.threshold.abs_()
    return peer


@pytest.mark.parametrize(
    ("arch", "extra"),
    [
        ("standard", {}),
        ("standard", {"apply_b_dec_to_input": False}),
        ("topk", {"k": 5}),
        ("topk", {"k": 5, "rescale_acts_by_decoder_norm": True}),
        ("jumprelu", {}),
        ("skip_transcoder", {"d_out": 24, "apply_b_dec_to_input": False}),
        ("jumprelu_transcoder", {"d_out": 16, "apply_b_dec_to_input": False}),
    ],
)
def test_we_read_what_saelens_writes(tmp_path, arch, extra):
    sae_lens = sae_lens_module()
    peer = _peer(sae_lens, arch, **extra)
    peer.save_model(tmp_path)
    ours = load_dictionary(tmp_path)
    assert ours.site == (Site(2, "resid_mid"))
    x = torch.randn(50, 24, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        f = peer.encode(x)
        assert torch.allclose(ours.encode(x), f, atol=1e-5)
        assert torch.allclose(ours(x), peer(x), atol=1e-4)
