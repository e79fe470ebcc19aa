"""Path patching on the real embedded model: the heads that write the IOI answer directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab.data import ContrastPair

pytestmark = pytest.mark.slow


def _pairs(n: int) -> list[ContrastPair]:
    from interplab.demo import ioi_prompts

    prompts, io, s = ioi_prompts()
    return [ContrastPair(prompts[i], prompts[i ^ 1], io[i], s[i]) for i in range(n)]


def test_head_senders_to_the_logits_find_the_direct_writers(smol):
    from interplab.sites import Site
    from interplab.techniques.patching import path_patching

    torch.set_num_threads(1)
    r = path_patching(smol, _pairs(8), progress=False)
    assert r.method == "fast" and r.note == ""
    assert (r.clean > 0).all() and r.clean.mean() > 2.0  # the model does IOI
    mean = r.effect().mean(0)  # [layer, head]
    assert np.isfinite(mean).all()
    # The direct logit attribution's top head (L23.h3) is the strongest sender: noising it alone,
    # along its direct path, takes away more than anything else, and with margin.
    order = np.argsort(mean.ravel())
    assert np.unravel_index(order[0], mean.shape) == (23, 3)
    assert mean[23, 3] < -0.5 * r.clean.mean() and mean[23, 3] < 2 * np.sort(mean.ravel())[1]
    # Heads in the first half of the network write almost nothing to the logits directly.
    assert np.abs(mean[:15]).max() < 0.1 * np.abs(mean[23, 3])
    top = r.top_cells(k=1)[0]
    assert top.site == Site(23, "attn.z", 3) and top.ci_high < 0
