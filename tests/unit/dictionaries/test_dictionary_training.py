"""Training: deterministic, exact resume after Ctrl-C or a kill, clear errors, several at once."""

import math

import pytest
import torch

from interplab.dictionaries import (
    DictionaryConfig,
    DictionaryError,
    HarvestError,
    TensorSource,
    TrainConfig,
    load_dictionary,
    train,
)
from interplab.dictionaries._state import CHECKPOINT
from interplab.sites import Site

SITE = Site(1, "resid_post")
MID, OUT = Site(1, "mlp.in"), Site(1, "mlp_out")


def data(n: int = 6000, d: int = 16, seed: int = 0) -> dict[Site, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(64, d, generator=g)
    idx = torch.randint(64, (n, 3), generator=g)
    x = (torch.rand(n, 3, 1, generator=g) * atoms[idx]).sum(1) + 1.0
    return {SITE: x, MID: x, OUT: torch.tanh(x) @ torch.randn(d, d, generator=g)}


def configs() -> dict[str, DictionaryConfig]:
    return {
        "topk": DictionaryConfig("topk", d_in=16, d_sae=64, k=4, site=SITE),
        "batch": DictionaryConfig("batchtopk", d_in=16, d_sae=32, k=3, site=SITE),
        "tc": DictionaryConfig(
            "jumprelu", d_in=16, d_sae=48, kind="skip_transcoder", d_out=16, site=MID, target=OUT
        ),
    }


CFG = TrainConfig(
    total_tokens=4000,
    batch_tokens=256,
    lr=2e-3,
    log_every=3,
    checkpoint_every=4,
    dead_after_tokens=1000,
)


def weights(run) -> dict[str, dict[str, torch.Tensor]]:
    return {n: d.state_dict() for n, d in run.dictionaries.items()}


def assert_same(a, b):
    for name in a:
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)


def test_training_lowers_the_error_and_is_deterministic(tmp_path):
    src = TensorSource(data(), block_tokens=1000)
    first = train(src, configs(), CFG, progress=False)
    second = train(src, configs(), CFG, progress=False)
    assert_same(weights(first), weights(second))
    curve = first.curves["topk"]
    assert curve.fve[-1] > curve.fve[0] + 0.1
    assert curve.tokens[-1] >= 4000 - 256 and curve.l0[-1] <= 4 + 1e-6
    assert set(first.dictionaries) == {"topk", "batch", "tc"}


@pytest.mark.parametrize("interrupt", ["ctrl-c", "kill"])
def test_a_resumed_run_ends_with_the_same_weights(tmp_path, interrupt):
    src = TensorSource(data(), block_tokens=1000)
    whole = train(src, configs(), CFG, progress=False)

    def stop(position):
        if position.step == 6:
            raise KeyboardInterrupt if interrupt == "ctrl-c" else RuntimeError("killed")

    with pytest.raises(KeyboardInterrupt if interrupt == "ctrl-c" else RuntimeError):
        train(src, configs(), CFG, out=tmp_path, progress=False, callback=stop)
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert saved["position"]["step"] == (6 if interrupt == "ctrl-c" else 4)
    resumed = train(src, configs(), CFG, out=tmp_path, progress=False)
    assert_same(weights(whole), weights(resumed))
    for name, curve in whole.curves.items():
        again = resumed.curves[name]
        assert (curve.fve == again.fve).all() and (curve.tokens == again.tokens).all()
    on_disk = load_dictionary(tmp_path / "topk")
    assert_same({"t": on_disk.state_dict()}, {"t": resumed.dictionaries["topk"].state_dict()})


def test_a_checkpoint_from_other_settings_is_refused(tmp_path):
    src = TensorSource(data(), block_tokens=1000)
    train(src, {"topk": configs()["topk"]}, CFG, out=tmp_path, progress=False)
    other = TrainConfig(total_tokens=3000, batch_tokens=256)
    with pytest.raises(DictionaryError, match="differs in: train"):
        train(src, {"topk": configs()["topk"]}, other, out=tmp_path, progress=False)


def test_a_nan_loss_names_the_step_and_leaves_the_checkpoint_intact(tmp_path):
    class Overflowing(TensorSource):
        def block(self, epoch, index):
            out = super().block(epoch, index)
            return {s: x * 1e25 for s, x in out.items()} if index == 2 else out

    src = Overflowing(data(), block_tokens=1000)
    bad = TrainConfig(total_tokens=4000, batch_tokens=256, checkpoint_every=2)
    with pytest.raises(DictionaryError, match=r"loss of dictionary 'topk' became .* at step \d+"):
        train(src, {"topk": configs()["topk"]}, bad, out=tmp_path, progress=False)
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert all(torch.isfinite(t).all() for t in saved["members"]["topk"]["dictionary"].values())


def test_nan_activations_are_refused_naming_the_site():
    x = data()
    x[SITE][17, 3] = math.nan
    with pytest.raises(HarvestError, match=r"non-finite activations .* at L1.resid_post"):
        TensorSource(x)


def test_a_dictionary_whose_width_does_not_match_its_site_is_refused():
    src = TensorSource(data(), block_tokens=1000)
    wrong = DictionaryConfig("topk", d_in=32, d_sae=64, k=4, site=SITE)
    with pytest.raises(DictionaryError, match=r"d_in=32, but L1.resid_post has width 16"):
        train(src, {"wrong": wrong}, CFG, progress=False)
    missing = DictionaryConfig("topk", d_in=16, d_sae=64, k=4, site=Site(5, "resid_post"))
    with pytest.raises(DictionaryError, match=r"reads L5.resid_post"):
        train(src, {"missing": missing}, CFG, progress=False)


def test_dead_latents_are_counted():
    src = TensorSource(data(), block_tokens=1000)
    cfg = TrainConfig(
        total_tokens=4000, batch_tokens=256, lr=2e-3, log_every=2, dead_after_tokens=300
    )
    wide = {"wide": DictionaryConfig("topk", d_in=16, d_sae=256, k=2, site=SITE)}
    curve = train(src, wide, cfg, progress=False).curves["wide"]
    assert 0 < curve.dead_fraction.max() < 1  # some of 256 latents die with k=2


def test_auxk_sends_gradient_to_dead_latents_only():
    from interplab.dictionaries import build

    d = build(DictionaryConfig("topk", d_in=16, d_sae=64, k=2, site=SITE))
    x = data()[SITE][:128]
    dead = torch.zeros(64, dtype=torch.bool)
    d.train_step(x, x, dead).loss.backward()
    live_only = d.W_enc.grad.abs().sum(0) > 0
    d.zero_grad()
    dead[~live_only] = True  # every latent that got no gradient is dead
    step = d.train_step(x, x, dead)
    step.loss.backward()
    assert "aux" in step.parts
    assert bool((d.W_enc.grad[:, dead].abs().sum(0) > 0).any())
