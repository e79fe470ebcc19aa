"""interplab's attribution graph against circuit-tracer 0.5 on the same model, prompt, transcoders.

circuit-tracer 0.5 pins transformers<=4.57.3 and huggingface-hub<1, which this project's venv
cannot hold (transformers 5, huggingface-hub 2), so the comparison runs in two interpreters:

    python bench/graphs_reference.py ours --out /tmp/graphref
    /work/venvs/circuit-tracer/bin/python bench/graphs_reference.py circuit-tracer --out /tmp/graphref
    python bench/graphs_reference.py compare --out /tmp/graphref

1. ``ours`` (``--random``: seeded random weights instead of the quick set) writes a JumpReLU set (circuit-tracer's set loader reads ReLU and JumpReLU
   only, not TopK): the quick set's weights with one threshold per layer chosen so that ~16
   features fire per token on the prompt; then our full adjacency, active features, logit
   targets and pruned masks (``ours.npz``), and the token ids both sides use (circuit-tracer
   prepends a special token when the prompt does not start with one; we feed the same ids).
2. ``circuit-tracer`` loads the converted HF folder of the embedded model with the nnsight
   backend (its Llama mapping: ``mlp.hook_in`` -> ``hook_mlp_out``), runs ``attribute`` with
   ``max_n_logits=10, desired_logit_prob=0.95`` and ``prune_graph(0.8, 0.98)``, and writes
   ``circuit_tracer.npz``.
3. ``compare`` checks: the same active features (layer, position, feature), the same logit
   targets, the same pruned node set, and every edge within 1e-4 of the largest |edge|.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

PROMPT = "The capital of France is"
TARGET_L0 = 16


def ours(out: Path, random: bool = False) -> None:
    import torch

    import interplab as ip
    from interplab.dictionaries import DictionaryConfig, build, save_dictionary
    from interplab.sites import Site
    from interplab.techniques.graphs import (
        TranscoderSet,
        attribute,
        prepare,
        prune,
        recipe,
        transcoder_set,
    )

    model = ip.load()
    if random:  # seeded random transcoders: the comparison is of the algorithms, not the features
        d = model.dims.d_model
        quick = TranscoderSet(
            {
                layer: build(
                    DictionaryConfig(
                        "topk", d_in=d, d_sae=2 * d, k=16, kind="transcoder", d_out=d,
                        site=Site(layer, "mlp.in"), target=Site(layer, "mlp_out"),
                    ),
                    seed=layer,
                ).eval()
                for layer in range(model.dims.n_layers)
            },
            "random",
        )  # fmt: skip
    else:
        quick = recipe.quick_set(model)
    tok = model.tokenizer
    ids = tok(PROMPT, add_special_tokens=True)["input_ids"]
    if ids[0] not in tok.all_special_ids:  # circuit-tracer's ensure_tokenized does the same
        ids = [tok.bos_token_id if tok.bos_token_id is not None else tok.pad_token_id, *ids]
    tokens = torch.tensor([ids])
    cache = model.activations(tokens, [f"L{layer}.mlp.in" for layer in quick.layers])
    jump = {}
    for layer, d in quick.by_layer.items():
        pre = cache[f"L{layer}.mlp.in"][0, 1:].float() @ d.W_enc + d.b_enc
        top = pre.flatten().topk(TARGET_L0 * pre.shape[0] + 1).values
        threshold = float(top[-2:].mean())  # midway: no feature sits on the threshold
        c = DictionaryConfig(
            "jumprelu", d_in=d.d_in, d_sae=d.d_sae, kind="transcoder", d_out=d.d_out,
            site=d.config.site, target=d.config.target,
        )  # fmt: skip
        j = build(c)
        state = {k: v for k, v in d.state_dict().items() if k in j.state_dict()}
        state["threshold"] = torch.full((d.d_sae,), threshold)
        j.load_state_dict(state)
        jump[layer] = j.eval()
    save_dictionary(jump, out / "set", "circuit_tracer", model_name=model.info.name)
    tcs = transcoder_set(out / "set", model)
    rep = prepare(model, tcs, tokens)
    g = attribute(model, tcs, rep, batch_size=128)
    p = prune(
        g.adjacency, g.logit_weights, n_features=g.n_features, n_tokens=g.n_tokens,
        n_logits=g.n_logits, node_threshold=0.8, edge_threshold=0.98,
    )  # fmt: skip
    np.savez(
        out / "ours.npz",
        adjacency=g.adjacency.numpy(),
        active=rep.active.cpu().numpy(),
        logits=g.logits.ids.cpu().numpy(),
        nodes=p.nodes.numpy(),
    )
    (out / "inputs.json").write_text(
        json.dumps({"ids": ids, "model_dir": model.info.source, "n_layers": model.dims.n_layers})
    )
    print(f"ours: {g.n_features} active features, {int(p.nodes.sum())} nodes kept", flush=True)


def circuit_tracer(out: Path) -> None:
    import torch
    from circuit_tracer import ReplacementModel, attribute  # type: ignore[import-not-found]
    from circuit_tracer.graph import prune_graph  # type: ignore[import-not-found]
    from circuit_tracer.transcoder.single_layer_transcoder import (  # type: ignore[import-not-found]
        load_transcoder_set,
    )

    inputs = json.loads((out / "inputs.json").read_text())
    paths = {i: str(out / "set" / f"layer_{i}.safetensors") for i in range(inputs["n_layers"])}
    tcs = load_transcoder_set(
        paths, scan="interplab-reference", feature_input_hook="mlp.hook_in",
        feature_output_hook="hook_mlp_out", device=torch.device("cpu"), dtype=torch.float32,
    )  # fmt: skip
    model = ReplacementModel.from_pretrained_and_transcoders(
        str(_v4_folder(Path(inputs["model_dir"]), out)), tcs, backend="nnsight", device=torch.device("cpu"),
        dtype=torch.float32,
    )  # fmt: skip
    graph = attribute(torch.tensor(inputs["ids"]), model, max_n_logits=10,
                      desired_logit_prob=0.95, batch_size=128)  # fmt: skip
    node_mask, _, _ = prune_graph(graph, 0.8, 0.98)
    np.savez(
        out / "circuit_tracer.npz",
        adjacency=graph.adjacency_matrix.cpu().numpy(),
        active=graph.active_features.cpu().numpy(),
        logits=graph.logit_token_ids.cpu().numpy(),
        nodes=node_mask.cpu().numpy(),
    )
    print(f"circuit-tracer: {len(graph.active_features)} active features", flush=True)


def _v4_folder(folder: Path, out: Path) -> Path:
    """Returns a folder of links to the converted model with the two files transformers 5 writes
    differently rewritten for transformers 4: the tokenizer class (``TokenizersBackend``) and the
    rotary base (``rope_parameters.rope_theta``; 4.57 would silently use 10,000, not 100,000)."""
    shim = out / "model-v4"
    shim.mkdir(exist_ok=True)
    for f in folder.iterdir():
        link = shim / f.name
        if f.name == "tokenizer_config.json":
            cfg = json.loads(f.read_text())
            cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
            link.write_text(json.dumps(cfg))
        elif f.name == "config.json":  # transformers 4 reads rope_theta, not rope_parameters
            cfg = json.loads(f.read_text())
            cfg["rope_theta"] = cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)
            link.write_text(json.dumps(cfg))
        elif not link.exists():
            link.symlink_to(f)
    return shim


def compare(out: Path) -> int:
    a, b = np.load(out / "ours.npz"), np.load(out / "circuit_tracer.npz")
    ok = True
    same_active = a["active"].shape == b["active"].shape and (a["active"] == b["active"]).all()
    print(f"active features: ours {len(a['active'])}, circuit-tracer {len(b['active'])}, "
          f"identical: {bool(same_active)}")  # fmt: skip
    ok &= bool(same_active)
    same_logits = (
        (a["logits"] == b["logits"]).all() if a["logits"].shape == b["logits"].shape else False
    )
    print(f"logit targets identical: {bool(same_logits)}")
    ok &= bool(same_logits)
    if a["adjacency"].shape == b["adjacency"].shape:
        scale = np.abs(b["adjacency"]).max()
        gap = np.abs(a["adjacency"] - b["adjacency"]).max()
        print(f"max |edge difference| / max |edge| = {gap / scale:.2e} (tolerance 1e-4)")
        ok &= bool(gap <= 1e-4 * scale)
        same_nodes = (a["nodes"] == b["nodes"]).all()
        print(f"pruned node sets identical: {bool(same_nodes)}")
        ok &= bool(same_nodes)
    else:
        print(f"adjacency shapes differ: {a['adjacency'].shape} vs {b['adjacency'].shape}")
        ok = False
    print("MATCH" if ok else "DIFFERENT")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="attribution graphs vs circuit-tracer")
    parser.add_argument("step", choices=["ours", "circuit-tracer", "compare"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/graphref"))
    parser.add_argument("--random", action="store_true", help="seeded random transcoders")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "ours":
        ours(args.out, args.random)
    elif args.step == "circuit-tracer":
        circuit_tracer(args.out)
    else:
        return compare(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
