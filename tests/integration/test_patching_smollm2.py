"""Activation patching on the real embedded model: the IOI effect sits where the circuit is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab.data import ContrastPair

pytestmark = pytest.mark.slow

NAMES = [(" Mary", " John"), (" Tom", " Anna"), (" James", " Sarah"), (" Paul", " Emma")]
TEMPLATE = "When{A} and{B} went to the store,{S} gave a drink to"


def _pairs() -> list[ContrastPair]:
    out = []
    for a, b in NAMES:
        for io, s in ((a, b), (b, a)):
            out.append(
                ContrastPair(
                    TEMPLATE.format(A=io, B=s, S=s), TEMPLATE.format(A=s, B=io, S=io), io, s
                )
            )
    return out


def test_ioi_resid_pre_effect_moves_from_the_subject_to_the_final_position_unlike_control(smol):
    from interplab.techniques.patching import activation_patching

    torch.set_num_threads(1)
    pairs = _pairs()
    r = activation_patching(smol, pairs, progress=False)
    assert r.method == "fast"
    assert (r.clean > 0).all() and r.clean.mean() > 1.0  # the model does IOI
    tokens = r.tokens[0]
    names = {i for i, t in enumerate(tokens) if t in (r.answers[0], r.wrong_answers[0])}
    s2 = max(names)  # the repeated subject
    last = len(tokens) - 1
    mean = r.recovery().mean(0)  # [layer, pos]
    early = mean[:3].mean(0)
    assert int(np.argmax(early)) in names  # early layers: the names, nothing else
    assert early[s2] > 0.5 and np.delete(early, sorted(names)).max() < 0.1
    assert np.argmax(mean[-3:].mean(0)) == last
    assert mean[-1, last] > 0.5  # late layers: the answer position carries the effect

    # The control sweep (unrelated news text, the same positions changed) ran by default. The
    # final position in the last layer restores the answer on any input: general, not IOI. The
    # first name, ten tokens before the answer, matters on IOI far more than on the control.
    c = r.control_comparison()
    task = c.task_fraction.reshape(mean.shape)
    ctrl = c.control_fraction.reshape(mean.shape)
    io = min(names)
    assert ctrl[-1, last] > 0.5
    assert task[:3, io].mean() - ctrl[:3, io].mean() > 0.5
