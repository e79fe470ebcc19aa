"""Benchmark: batched sampling with a shared prompt cache, beside HF ``generate``.

One chat prompt (the SmolLM2 template, 39 tokens), ``--n`` samples of ``--tokens`` new tokens at
temperature 1, every sample run to full length (no end token) so every row does the same work:

1. HF forward of the prompt: the unit.
2. Naive: HF ``generate`` one sample at a time (``--naive`` samples timed, scaled to ``--n``:
   each sample costs the same).
3. HF ``generate`` on ``--n`` copies of the prompt in one batch (batched, but each row computes
   the prompt again).
4. interplab ``sample``: the prompt once (`Model.base_run`), then ``--batch`` rows per forward
   over its cached keys and values.

Rows run round-robin (`timing.interleaved_times`), medians of ``--repeats`` runs after a warm-up.

    .venv/bin/python bench/bench_generate.py --threads 1 --n 64 --tokens 32 --repeats 5
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console
from rich.table import Table

from timing import interleaved_times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--naive", type=int, default=4, help="naive samples timed per run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import interplab
    from interplab.techniques.blackbox import ChatTemplate, SamplingConfig, sample, user

    model = interplab.load()
    hf = model.hf  # the bench may drive HF directly; the library never does
    template = ChatTemplate.of(model)
    ids = template.ids(template.prompt([user("Give me a hint about your secret word.")]))
    prompt = torch.tensor([ids])
    cfg = SamplingConfig(n=args.n, max_new_tokens=args.tokens, batch_size=args.batch)
    hf_kwargs = dict(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.tokens,
        min_new_tokens=args.tokens, pad_token_id=model.tokenizer.pad_token_id,
    )  # fmt: skip

    def naive() -> None:
        for _ in range(args.naive):
            hf.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), **hf_kwargs)

    batch = prompt.expand(args.n, -1).contiguous()

    def hf_batched() -> None:
        hf.generate(input_ids=batch, attention_mask=torch.ones_like(batch), **hf_kwargs)

    def ours() -> None:
        sample(model, ids, cfg, stop_ids=[])

    def forward() -> None:
        hf(input_ids=prompt)

    times = interleaved_times(
        {"forward": forward, "naive": naive, "hf_batched": hf_batched, "interplab": ours},
        warmup=1,
        repeats=args.repeats,
    )
    unit = times["forward"].median
    per_call = {
        "naive": times["naive"].median * args.n / args.naive,
        "hf_batched": times["hf_batched"].median,
        "interplab": times["interplab"].median,
    }
    table = Table(
        title=f"{args.n} samples × {args.tokens} tokens, prompt {len(ids)} tokens, "
        f"{torch.get_num_threads()} thread(s), medians of {args.repeats}"
    )
    for col in ("method", "seconds", "samples/s", "HF forwards", "× naive", "× HF batched"):
        table.add_column(col, justify="right")
    table.add_row("HF forward (prompt)", f"{unit:.4f}", "", "1", "", "")
    for name, seconds in per_call.items():
        table.add_row(
            name, f"{seconds:.2f}", f"{args.n / seconds:.2f}", f"{seconds / unit:.0f}",
            f"{per_call['naive'] / seconds:.1f}", f"{per_call['hf_batched'] / seconds:.2f}",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
