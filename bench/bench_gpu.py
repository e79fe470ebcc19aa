"""GPU benchmark: interplab beside nnsight and TransformerLens on one CUDA device.

Rows (SmolLM2-135M, float32 and bfloat16 where stated, medians of >= 5 runs after warm-up,
interleaved round-robin so drift lands on every row alike; `timing.print_table` gives the ratio
to a plain HF forward and to each peer):

1. capture: resid_post of all 30 layers (interplab, nnsight, TransformerLens, HF floor).
2. patching sweep: resid_pre over every (layer, position) cell; interplab's exact sweep
   (``method="fast"``) against TransformerLens's sweep utility and nnsight one cell at a time
   (nnsight is timed on one layer's positions and scaled by the layer count, said in the row).
3. attribution patching: interplab's one forward + one backward, beside the HF forward+backward.
4. SAE training throughput: tokens/s of `interplab.dictionaries.train` (TopK, 4608 latents) on
   activations already on the device.

Exits 0 with "SKIP: no CUDA" where torch sees no GPU. Written without a GPU at hand: unrun.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import peers
from timing import interleaved_times, print_table


def main() -> int:
    args = _args()
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device visible to torch; nothing to benchmark")
        return 0
    import interplab as ip

    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    free, total = torch.cuda.mem_get_info(dev)
    print(f"free memory {free / 2**30:.1f} of {total / 2**30:.1f} GiB")
    loaded = peers.load_model()
    hf = loaded.hf.to(dev).eval()
    tok = loaded.tokenizer
    model = ip.load(device="cuda")
    tokens = peers.corpus_tokens(tok, args.batch, args.pos).to(dev)
    sync = torch.cuda.synchronize

    def timed(fn):
        def run():
            out = fn()
            sync()
            return out

        return run

    # 1. capture
    bridge = peers.tl_bridge(hf, tok)
    lm = peers.nnsight_model(hf, tok)
    rows = {
        "HF forward": timed(lambda: peers.hf_forward(hf, tokens)),
        "interplab capture": timed(lambda: peers.interplab_capture_resid_post(model, tokens)),
        "TransformerLens capture": timed(lambda: peers.tl_capture_resid_post(bridge, tokens)),
        "nnsight capture": timed(lambda: peers.nnsight_capture_resid_post(lm, tokens)),
    }
    t = interleaved_times(rows, warmup=args.warmup, repeats=args.repeats)
    print_table(t, floor="HF forward", tl="TransformerLens capture", nnsight="nnsight capture",
                title=f"capture resid_post x30, batch {args.batch} x {args.pos}, CUDA fp32")  # fmt: skip

    # 2. patching sweep (resid_pre, every layer x position), and 3. attribution patching
    from interplab.data import ioi_pairs
    from interplab.data.selection import same_length
    from interplab.techniques.patching import activation_patching, attribution_patching

    pairs = same_length(
        ioi_pairs(tok, n=200, seed=0, order="ABBA", templates=(0,)), tok, args.n
    ).pairs
    clean = model.tokenize([p.clean for p in pairs]).ids.to(dev)
    corrupt = model.tokenize([p.corrupt for p in pairs]).ids.to(dev)
    ans = torch.tensor([model.token_id(p.answer) for p in pairs], device=dev)
    wrong = torch.tensor([model.token_id(p.wrong_answer) for p in pairs], device=dev)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1]
        rows_ = torch.arange(last.shape[0], device=last.device)
        return (last[rows_, ans] - last[rows_, wrong]).mean()

    n_pos = clean.shape[1]
    kw = {"components": ("resid_pre",), "control": False, "progress": False, "record": False}
    rows = {
        "HF forward": timed(lambda: peers.hf_forward(hf, corrupt)),
        "interplab sweep (fast)": timed(lambda: activation_patching(model, pairs, method="fast", **kw)),
        "TransformerLens sweep": timed(lambda: peers.tl_patch_resid_pre(bridge, clean, corrupt, metric)),
        "nnsight sweep (1 layer x30)": timed(
            lambda: [peers.nnsight_patch_resid_pre_cell(lm, clean, corrupt, 0, p, metric) for p in range(n_pos)]
        ),
    }  # fmt: skip
    t = interleaved_times(rows, warmup=1, repeats=args.repeats)
    t["nnsight sweep (1 layer x30)"] = type(t["HF forward"])(
        median=30 * t["nnsight sweep (1 layer x30)"].median,
        iqr=30 * t["nnsight sweep (1 layer x30)"].iqr,
        runs=tuple(30 * r for r in t["nnsight sweep (1 layer x30)"].runs),
    )
    print_table(t, floor="HF forward", tl="TransformerLens sweep", nnsight="nnsight sweep (1 layer x30)",
                title=f"resid_pre patching, {len(pairs)} IOI pairs x {n_pos} positions x 30 layers, CUDA fp32")  # fmt: skip

    def hf_fwd_bwd():
        with torch.enable_grad():
            emb = hf.get_input_embeddings()(corrupt).detach().requires_grad_(True)
            metric(hf(inputs_embeds=emb).logits).backward()

    rows = {
        "HF forward+backward": timed(hf_fwd_bwd),
        "interplab attribution": timed(lambda: attribution_patching(model, pairs, **kw)),
    }
    t = interleaved_times(rows, warmup=1, repeats=args.repeats, inference_mode=False)
    print_table(t, floor="HF forward+backward", title="attribution patching (resid_pre), CUDA fp32")

    # 4. SAE training throughput
    from interplab.dictionaries import DictionaryConfig
    from interplab.dictionaries.harvest import TensorSource
    from interplab.dictionaries.train import TrainConfig, train

    with torch.no_grad():
        acts = model.run(model.tokens(tokens), capture=[ip.Site.parse("L12.resid_post")]).cache
    x = acts[ip.Site.parse("L12.resid_post")].reshape(-1, 576)
    x = x.repeat(max(1, args.sae_tokens // x.shape[0]), 1)[: args.sae_tokens]
    source = TensorSource({"L12.resid_post": x.float().cpu()}, block_tokens=65536)
    cfg = TrainConfig(total_tokens=args.sae_tokens, batch_tokens=4096, checkpoint_every=10**6)
    dcfg = DictionaryConfig("topk", d_in=576, d_sae=4608, k=32, site="L12.resid_post")
    start = time.perf_counter()
    train(source, {"topk": dcfg}, cfg, progress=False)
    sync()
    seconds = time.perf_counter() - start
    print(f"SAE training (TopK 4608, k=32): {args.sae_tokens / seconds:,.0f} tokens/s "
          f"({args.sae_tokens} tokens in {seconds:.1f} s, one run)")  # fmt: skip
    return 0


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--pos", type=int, default=128)
    p.add_argument("--n", type=int, default=16, help="IOI pairs in the patching sweep")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sae-tokens", type=int, default=2_000_000)
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(main())
