"""The same guarantees on a GPU, where one is present (skipped on CPU-only machines)."""

import pytest
import torch

import interplab as ip

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_capture_on_cuda_is_bit_identical_to_hf_on_cuda_and_close_to_cpu(smol):
    gpu = ip.load(device="cuda")
    prompt = "The Eiffel Tower is located in the city of"
    tokens = gpu.tokenize(prompt)
    with torch.no_grad():
        plain = gpu.hf(input_ids=tokens.ids).logits
    with gpu.capture(["L12.resid_post", "L3.attn.z"]) as cache:
        logits = gpu(prompt)
    assert torch.equal(logits, plain)
    assert cache["L12.resid_post"].device.type == "cuda"
    torch.testing.assert_close(logits.cpu(), smol(prompt), rtol=1e-3, atol=1e-3)
    with pytest.raises(ip.InterventionError, match="is on cpu"):
        gpu.run(prompt, interventions=[ip.Add("L3.resid_post", torch.zeros(576))])
