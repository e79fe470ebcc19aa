"""Formats: exact round trips, circuit-tracer sets, and damaged files named in the error."""

import json

import pytest
import torch
import yaml

from interplab.dictionaries import (
    DictionaryConfig,
    DictionaryFileError,
    build,
    detect,
    load_dictionaries,
    load_dictionary,
    save_dictionary,
)
from interplab.dictionaries.formats.hooks import (
    hook_from_site,
    module_from_sites,
    site_from_hook,
    sites_from_module,
)
from interplab.dictionaries.registry import REGISTRY
from interplab.sites import Site


def filled(config: DictionaryConfig, seed: int = 0):
    d = build(config, seed=seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        d.b_enc.copy_(torch.randn(d.d_sae, generator=g) * 0.1)
        d.b_dec.copy_(torch.randn(d.d_out, generator=g))
        if d.W_skip is not None:
            d.W_skip.copy_(torch.randn(d.d_out, d.d_in, generator=g) * 0.1)
        if getattr(d, "threshold", None) is not None:
            d.threshold.copy_(torch.rand(d.d_sae, generator=g) * 0.3)
    return d


def config(arch: str, kind: str, layer: int = 2) -> DictionaryConfig:
    sae = kind == "sae"
    return DictionaryConfig(
        arch,  # type: ignore[arg-type]
        d_in=16,
        d_sae=40,
        k=5,
        kind=kind,  # type: ignore[arg-type]
        d_out=None if sae else 16,
        site=Site(layer, "resid_post") if sae else Site(layer, "mlp.in"),
        target=None if sae else Site(layer, "mlp_out"),
        matryoshka_widths=(10,) if arch == "matryoshka_batchtopk" else (),
    )


CASES = [
    (arch, kind, fmt)
    for arch in sorted(REGISTRY)
    for kind in ("sae", "transcoder", "skip_transcoder")
    for fmt in ("interplab", "saelens", "sparsify")
    if not (fmt == "sparsify" and arch != "topk")
    and not (fmt == "saelens" and arch == "topk" and kind != "sae")
]


@pytest.mark.parametrize(("arch", "kind", "fmt"), CASES)
def test_every_format_round_trips_exactly(tmp_path, arch, kind, fmt):
    d = filled(config(arch, kind))
    save_dictionary(d, tmp_path / "d", fmt)  # type: ignore[arg-type]
    assert detect(tmp_path / "d") == fmt
    back = load_dictionary(tmp_path / "d")
    x = torch.randn(30, 16)
    assert torch.equal(back.encode(x), d.encode(x))
    assert torch.equal(back(x), d(x))
    assert (back.site, back.target) == (d.site, d.target)


@pytest.mark.parametrize(("arch", "fmt"), [("topk", "saelens"), ("standard", "sparsify")])
def test_formats_refuse_what_they_cannot_hold(tmp_path, arch, fmt):
    with pytest.raises(DictionaryFileError, match="TopK"):
        save_dictionary(filled(config(arch, "transcoder")), tmp_path, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["jumprelu", "standard", "topk"])
def test_circuit_tracer_sets_round_trip(tmp_path, arch):
    layers = {i: filled(config(arch, "skip_transcoder", layer=i), seed=i) for i in range(3)}
    save_dictionary(layers, tmp_path, "circuit_tracer")
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert cfg["feature_input_hook"] == "ln2.hook_normalized"
    assert cfg["feature_output_hook"] == "hook_mlp_out"
    back = load_dictionaries(tmp_path)
    assert list(back) == ["layer_0", "layer_1", "layer_2"]
    x = torch.randn(8, 16)
    for i in range(3):
        assert torch.equal(back[f"layer_{i}"](x), layers[i](x))
        assert back[f"layer_{i}"].site == Site(i, "mlp.in")
    with pytest.raises(DictionaryFileError, match="pass layer="):
        load_dictionary(tmp_path)
    assert torch.equal(load_dictionary(tmp_path, layer=1).encode(x), layers[1].encode(x))
    with pytest.raises(DictionaryFileError, match=r"every layer 0..n-1"):
        save_dictionary({1: layers[1]}, tmp_path / "gap", "circuit_tracer")


def test_a_truncated_weights_file_is_named(tmp_path):
    save_dictionary(filled(config("topk", "sae")), tmp_path, "saelens")
    weights = tmp_path / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(
        DictionaryFileError, match=r"sae_weights\.safetensors is not a readable safetensors file"
    ):
        load_dictionary(tmp_path)


def test_an_unknown_architecture_is_named_with_its_file(tmp_path):
    save_dictionary(filled(config("topk", "sae")), tmp_path / "a")
    path = tmp_path / "a" / "dictionary.json"
    data = json.loads(path.read_text())
    data["config"]["architecture"] = "gated"
    path.write_text(json.dumps(data))
    with pytest.raises(
        DictionaryFileError, match=r"dictionary\.json: architecture='gated' is not valid"
    ):
        load_dictionary(tmp_path / "a")
    save_dictionary(filled(config("topk", "sae")), tmp_path / "b", "saelens")
    cfg = tmp_path / "b" / "cfg.json"
    data = json.loads(cfg.read_text())
    data["architecture"] = "gated"
    cfg.write_text(json.dumps(data))
    with pytest.raises(DictionaryFileError, match=r"cfg\.json: SAELens architecture 'gated'"):
        load_dictionary(tmp_path / "b")


def test_a_wrongly_shaped_tensor_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    save_dictionary(filled(config("topk", "sae")), tmp_path, "sparsify")
    path = tmp_path / "sae.safetensors"
    tensors = load_file(str(path))
    tensors["W_dec"] = tensors["W_dec"][:, :8].contiguous()
    save_file(tensors, str(path))
    with pytest.raises(
        DictionaryFileError, match=r"'W_dec' has shape \(40, 8\), expected \(40, 16\)"
    ):
        load_dictionary(tmp_path)


def test_saelens_sae_without_decoder_bias_subtraction_is_folded(tmp_path):
    d = filled(config("standard", "sae"))
    save_dictionary(d, tmp_path, "saelens")
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["apply_b_dec_to_input"] = False  # now pre = x @ W_enc + b_enc
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    x = torch.randn(10, 16)
    expected = torch.relu(x @ d.W_enc + d.b_enc) @ d.W_dec + d.b_dec
    assert torch.allclose(load_dictionary(tmp_path)(x), expected, atol=1e-5)


def test_hook_names_map_both_ways():
    for site in [
        Site(3, "resid_pre"),
        Site(3, "resid_mid"),
        Site(3, "resid_post"),
        Site(3, "mlp_out"),
        Site(3, "attn_out"),
        Site(3, "mlp.in"),
        Site(3, "mlp.post"),
        Site(None, "embed"),
    ]:
        assert site_from_hook(hook_from_site(site)) == site
    assert site_from_hook("blocks.5.mlp.hook_in") == Site(5, "mlp.in")
    assert sites_from_module("model.layers.4.mlp", True, source="t") == (
        Site(4, "mlp.in"),
        Site(4, "mlp_out"),
    )
    assert sites_from_module("layers.4", False, source="t") == (Site(4, "resid_post"),) * 2
    assert module_from_sites(Site(4, "mlp.in"), Site(4, "mlp_out"), True) == "layers.4.mlp"
    with pytest.raises(DictionaryFileError, match="cannot map TransformerLens hook"):
        site_from_hook("blocks.2.hook_nothing")
    with pytest.raises(DictionaryFileError, match="no hookpoint"):
        module_from_sites(Site(4, "resid_mid"), Site(4, "resid_mid"), False)
