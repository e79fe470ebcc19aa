import pytest

from interplab.sites import (
    COMPONENTS,
    MODEL_WIDE,
    PER_HEAD,
    Dimensions,
    Site,
    SiteError,
    all_sites,
    check_site,
)

DIMS = Dimensions(n_layers=4, d_model=32, n_heads=4, n_kv_heads=2, d_head=8, d_mlp=64, d_vocab=100)


def test_every_site_round_trips_through_its_string_form():
    sites = all_sites(DIMS)
    sites += [Site(layer, c, head) for layer in range(4) for c in PER_HEAD for head in range(4)]
    assert len(sites) == 3 + 4 * (len(COMPONENTS) - 3) + 4 * 5 * 4
    for site in sites:
        assert Site.parse(str(site)) == site
        assert Site.parse(site) is site


def test_string_forms_match_the_documented_examples():
    assert str(Site(12, "resid_post")) == "L12.resid_post"
    assert str(Site(3, "attn.z", 5)) == "L3.attn.z.h5"
    assert str(Site(None, "embed")) == "embed"
    assert Site.parse("L3.attn.pattern.h2") == Site(3, "attn.pattern", 2)
    assert Site.parse(" logits ") == Site(None, "logits")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("L3.resid", "component among"),
        ("resid_post", "component among"),
        ("L3.resid_post.h2", "has no heads"),
        ("X3.resid_post", "cannot parse"),
        ("", "cannot parse"),
    ],
)
def test_bad_site_strings_name_what_is_valid(text, message):
    with pytest.raises(SiteError, match=message):
        Site.parse(text)


def test_model_wide_sites_take_no_layer_and_layer_sites_need_one():
    for c in MODEL_WIDE:
        with pytest.raises(SiteError, match="takes no layer"):
            Site(0, c)
    with pytest.raises(SiteError, match="needs a layer"):
        Site(None, "resid_pre")
    with pytest.raises(SiteError, match="unknown component"):
        Site(0, "resid")  # type: ignore[arg-type]


def test_out_of_range_layer_and_head_list_the_valid_range():
    with pytest.raises(SiteError, match=r"valid layers are 0\.\.3"):
        check_site("L4.resid_post", DIMS)
    with pytest.raises(SiteError, match=r"valid heads are 0\.\.3"):
        check_site("L0.attn.z.h4", DIMS)
    with pytest.raises(SiteError, match="valid layers"):
        check_site("L-1.resid_post", DIMS)
    assert check_site("L3.attn.k.h3", DIMS) == Site(3, "attn.k", 3)


def test_sites_sort_in_forward_order():
    order = sorted(
        [Site(None, "logits"), Site(1, "resid_pre"), Site(None, "embed"), Site(0, "mlp_out")],
        key=lambda s: s.sort_key,
    )
    assert [str(s) for s in order] == ["embed", "L0.mlp_out", "L1.resid_pre", "logits"]


def test_group_size_maps_query_heads_to_kv_heads():
    assert DIMS.group_size == 2
