"""Feature sites: one string form, parsed and printed in one module."""

import pytest

from interplab.dictionaries import FeatureSite
from interplab.sites import Site, SiteError


@pytest.mark.parametrize(
    "text",
    [
        "L12.resid_post.sae[res12].f123",
        "L12.resid_post.sae[res12].error",
        "L12.resid_post.sae[res12]",
        "L6.mlp_out.sae[tc-6.v2:a].f0",
        "embed.sae[e].f3",
    ],
)
def test_feature_sites_round_trip(text):
    fs = FeatureSite.parse(text)
    assert str(fs) == text
    assert FeatureSite.parse(fs) is fs


def test_feature_site_fields():
    fs = FeatureSite.parse("L3.resid_mid.sae[x].f7")
    assert fs == FeatureSite(Site(3, "resid_mid"), "x", 7)
    assert fs.features == FeatureSite(Site(3, "resid_mid"), "x")
    assert FeatureSite.parse("L3.resid_mid.sae[x].error").error


@pytest.mark.parametrize(
    "bad",
    [
        "L3.resid_post.f7",
        "L3.resid_post.sae[x.f7",
        "L3.resid_post.sae[].f1",
        "L3.resid_post.sae[x].g7",
        "L3.nothing.sae[x].f1",
        "L3.resid_post.sae[x].f-1",
        "L3.resid_post.sae[a b].f1",
    ],
)
def test_bad_feature_sites_say_what_is_valid(bad):
    with pytest.raises(SiteError):
        FeatureSite.parse(bad)


def test_a_feature_site_is_one_feature_or_the_error():
    with pytest.raises(SiteError, match="not both"):
        FeatureSite(Site(1, "resid_post"), "x", 3, error=True)
