"""`Model`: an unmodified HF causal LM, its tokenizer and adapter, and the ways to look inside it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from interplab.core.cache import Cache
from interplab.core.hooks import HookSession
from interplab.core.interventions import Ablate, Intervention, InterventionError
from interplab.core.partial import BaseRun, Partial, base_run, partial_support, unembed
from interplab.core.weights import Weights
from interplab.errors import UserError
from interplab.models.adapter import Adapter, get_module
from interplab.models.load import DEFAULT_MODEL, ModelInfo, load_hf
from interplab.sites import Dimensions, Site, SiteLike, check_site
from interplab.types import Activations, Float, Int, Logits, Residual, TokenIds

Inputs = str | Sequence[str] | Tensor


class _StopForward(Exception):
    """Raised inside the forward once every requested activation has been captured."""


def _stop_forward(*_: object) -> None:
    raise _StopForward


class InputError(UserError):
    """Prompts or tokens that cannot be run."""


@dataclass(frozen=True)
class Tokens:
    """Token ids ``[batch, pos]`` and attention mask of a batch, padded on the left or the right.

    Positions in interventions index the padded tensor; `index` resolves a position per row (0 is
    each row's first real token, -1 its last), so the same number means the same token in every
    row whichever side was padded.
    """

    ids: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        if self.ids.shape != self.mask.shape:
            raise InputError(
                f"token ids {tuple(self.ids.shape)} and attention mask {tuple(self.mask.shape)} "
                "must have the same shape"
            )
        if self.ids.ndim != 2:
            raise InputError(f"token ids must be [batch, pos], got shape {tuple(self.ids.shape)}")
        if bool((self.mask.sum(1) == 0).any()):
            raise InputError("a row of the attention mask is all zeros: every prompt needs a token")

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(1)

    @property
    def padded(self) -> bool:
        return bool((self.mask == 0).any())

    @property
    def padding_side(self) -> str:
        """``'left'`` if any row starts with padding, else ``'right'`` (also for no padding)."""
        return "left" if bool((self.mask[:, 0] == 0).any()) else "right"

    @property
    def starts(self) -> Tensor:
        """Index of each row's first real token (0 unless left-padded)."""
        return (
            self.mask.shape[1] - self.lengths
            if self.padding_side == "left"
            else torch.zeros_like(self.lengths)
        )

    @property
    def last(self) -> Tensor:
        """Index of each row's last real token."""
        return self.starts + self.lengths - 1

    @property
    def position_ids(self) -> Tensor:
        """Each token's position within its own row (padding counts as position 0)."""
        return (self.mask.long().cumsum(1) - 1).clamp(min=0)

    def index(self, position: int) -> Tensor:
        """Returns ``[batch]`` indices into the padded tensor of ``position`` in each row (0: the
        first real token, -1: the last), with a clear error if a row is too short."""
        lengths = self.lengths
        if (position >= 0 and bool((position >= lengths).any())) or (
            position < 0 and bool((-position > lengths).any())
        ):
            raise InputError(
                f"position {position} is outside a row of {int(lengths.min())} tokens; valid "
                f"positions for every row are {-int(lengths.min())}..{int(lengths.min()) - 1}"
            )
        return self.starts + (position if position >= 0 else lengths + position)


@dataclass(frozen=True)
class Run:
    """The logits of one forward pass and what it captured."""

    logits: Logits
    cache: Cache
    tokens: Tokens

    def at(self, site: SiteLike | None = None, position: int = -1) -> Activations:
        """Returns ``[batch, ...]``: the logits (no site) or a captured site at ``position`` of
        each row, resolved per row (-1: each row's last real token, whatever the padding)."""
        rows = torch.arange(self.tokens.ids.shape[0], device=self.tokens.ids.device)
        index = self.tokens.index(position)
        values = self.logits if site is None else self.cache[site]
        return values[rows, index]


@dataclass(frozen=True)
class Generation:
    """Generated continuations: full token ids, the new text, and what was captured."""

    ids: TokenIds
    prompt_length: int
    texts: list[str]
    cache: Cache


class Model:
    """A HF causal LM wrapped with hooks only: with no intervention it computes exactly what HF does."""

    def __init__(self, hf: nn.Module, tokenizer: Any, adapter: Adapter, info: ModelInfo) -> None:
        self.hf = hf.eval()
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.info = info
        self.dims: Dimensions = adapter.dims(hf.config)
        self.attached: dict[str, Any] = {}
        """Objects higher layers attach by name (dictionaries, `interplab.dictionaries.attach`),
        so a `FeatureSite` naming one resolves anywhere; core itself never reads them."""

    def __repr__(self) -> str:
        d = self.dims
        return (
            f"Model({self.info.name!r}, {self.adapter.family}, {d.n_layers} layers, d_model "
            f"{d.d_model}, {d.n_heads} heads / {d.n_kv_heads} kv heads, {self.info.dtype} on "
            f"{self.info.device})"
        )

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    # -- tokens ----------------------------------------------------------------------------

    @property
    def weights(self) -> Weights:
        """The model's weights as views in one orientation (`interplab.core.weights`)."""
        return Weights(self.hf, self.adapter)

    @property
    def family(self) -> str:
        """The adapter family (``llama``, ``qwen3``, ``gemma3``, ``gpt2``, ``neox``)."""
        return self.adapter.family

    @property
    def parallel_residual(self) -> bool:
        """Whether attention and MLP read the same residual (Pythia): no resid_mid then."""
        return self.adapter.mlp_in is None or self.adapter.parallel_residual(self.hf.config)

    def copy(self) -> Model:
        """Returns a Model on a deep copy of the weights (for weight edits that must not leak)."""
        import copy

        out = Model(copy.deepcopy(self.hf), self.tokenizer, self.adapter, self.info)
        out.attached = dict(self.attached)
        return out

    def hooked_modules(self) -> list[str]:
        """Returns the names of the modules with forward hooks in place (an intervention or a
        spliced dictionary is active); empty for the plain model."""
        return [
            name for name, m in self.hf.named_modules() if m._forward_hooks or m._forward_pre_hooks
        ]

    def embed(self, ids: TokenIds) -> Residual:
        """Returns the token embeddings ``[batch, pos, d_model]`` of ``ids`` (the embedding module's
        output, before any scaling or positions the model adds before block 0)."""
        return self.weights.embedding(ids.to(self.device))

    def tokens(self, ids: Tensor, mask: Tensor | None = None) -> Tokens:
        """Returns a token batch from ids ``[batch, pos]`` and an optional attention mask (1 for
        real tokens, 0 for padding on either side)."""
        t = self.tokenize(ids)
        if mask is None:
            return t
        return Tokens(t.ids, mask.to(self.device, torch.long))

    def tokenize(self, inputs: Inputs | Tokens, *, padding_side: str = "right") -> Tokens:
        """Returns token ids and mask: strings are tokenised as HF does and padded on
        ``padding_side``; tensors are taken as unpadded ids; `Tokens` pass through."""
        if isinstance(inputs, Tokens):
            return Tokens(inputs.ids.to(self.device), inputs.mask.to(self.device))
        if padding_side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if isinstance(inputs, Tensor):
            ids = inputs[None] if inputs.ndim == 1 else inputs
            if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
                raise InputError(
                    f"token ids must be an integer tensor [batch, pos] or [pos], got "
                    f"{inputs.dtype} of shape {tuple(inputs.shape)}"
                )
            if ids.shape[1] == 0:
                raise InputError("token ids are empty: a prompt needs at least one token")
            if int(ids.max()) >= self.dims.d_vocab or int(ids.min()) < 0:
                raise InputError(f"token ids must lie in 0..{self.dims.d_vocab - 1}")
            ids = ids.to(self.device, torch.long)
            return Tokens(ids, torch.ones_like(ids))
        prompts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not prompts:
            raise InputError("no prompts given")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise InputError(f"prompt {i} is {type(p).__name__}, not a string")
            if not p:
                raise InputError(f"prompt {i} is empty: a prompt needs at least one token")
        enc = [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        width = max(len(e) for e in enc)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):
            row = slice(width - len(e), width) if padding_side == "left" else slice(0, len(e))
            ids[i, row] = torch.tensor(e, dtype=torch.long)
            mask[i, row] = 1
        return Tokens(ids.to(self.device), mask.to(self.device))

    def to_str_tokens(self, inputs: str | Tensor) -> list[str]:
        """Returns the tokens of one prompt as strings (``' Paris'``), as the model sees them."""
        ids = self.tokenize(inputs).ids[0] if isinstance(inputs, str) else inputs.flatten()
        return [self.tokenizer.decode([int(i)]) for i in ids]

    def token_id(self, text: str) -> int:
        """Returns the id of ``text`` if it is exactly one token, else an error naming its tokens."""
        if not isinstance(text, str) or not text:
            raise InputError("a target token must be a non-empty string such as ' Paris'")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = [self.tokenizer.decode([i]) for i in ids]
            raise InputError(
                f"{text!r} is {len(ids)} tokens {pieces}, not one; pass a single token (note the "
                f"leading space: ' Paris', not 'Paris') or its first token {pieces[0]!r}"
            )
        return int(ids[0])

    # -- forward ---------------------------------------------------------------------------

    def forward(self, inputs: Inputs | Tokens, *, grad: bool = False) -> Logits:
        """Returns the logits ``[batch, pos, vocab]``, exactly HF's (hooks active in a capture apply)."""
        tokens = self.tokenize(inputs)
        return self._forward(tokens, grad=grad)

    __call__ = forward

    def forward_to_final_norm(self, inputs: Inputs | Tokens, *, grad: bool = False) -> None:
        """Runs the forward through the final norm and stops before the unembedding: for
        captures that end at ``final_norm`` and need no ``[batch, pos, vocab]`` logits (an
        attribution graph's batch of prompt copies would spend hundreds of MB on them)."""
        tokens = self.tokenize(inputs)
        handle = get_module(self.hf, self.adapter.unembed).register_forward_pre_hook(_stop_forward)
        try:
            self._forward(tokens, grad=grad)
        except _StopForward:
            pass
        finally:
            handle.remove()

    def _forward(self, tokens: Tokens, *, grad: bool) -> Logits:
        padded = tokens.padded
        with torch.set_grad_enabled(grad):
            out = self.hf(
                input_ids=tokens.ids,
                attention_mask=tokens.mask if padded else None,
                # Left padding shifts every real token; positions then count real tokens only, so
                # a padded row computes what it would alone. Right padding leaves real tokens at
                # their own positions, and HF's default keeps the logits bit-identical to plain HF.
                position_ids=tokens.position_ids if tokens.padding_side == "left" else None,
                use_cache=False,
            )
        return out.logits

    # -- partial forwards (the exact fast paths) ----------------------------------------------

    def partial_support(self, tokens: Tokens | None = None) -> str | None:
        """Returns why this model (and batch) cannot run partial forwards, or None if it can."""
        return partial_support(self, tokens)

    def supports_partial(self, tokens: Tokens | None = None) -> bool:
        """Whether `base_run` and `partial` work on this model (and batch)."""
        return partial_support(self, tokens) is None

    def base_run(
        self,
        inputs: Inputs | Tokens,
        *,
        capture: Sequence[SiteLike] = (),
        interventions: Sequence[Intervention] = (),
    ) -> BaseRun:
        """Returns one forward kept for partial re-runs: residuals entering every layer, keys and
        values, logits and ``capture`` (`interplab.core.partial`)."""
        return base_run(self, self.tokenize(inputs), list(capture), self._resolve(interventions))

    def partial(self, start: int, length: int, base: BaseRun | None = None) -> Partial:
        """Returns a runner of HF's decoder layers on positions ``start..length-1`` over the
        ``base`` run's cached keys and values (`interplab.core.partial`)."""
        return Partial(self, start, length, base)

    def unembed(
        self,
        resid: Float[Tensor, "*batch d_model"],
        columns: Int[Tensor, "*batch k"] | None = None,
    ) -> Float[Tensor, "*batch k"]:
        """Returns logits of final residuals ``[..., d_model]`` (final norm, then unembedding);
        with ``columns`` ``[rows, k]``, only those logits of each row of ``resid`` ``[rows, d]``."""
        return unembed(self, resid, columns)

    def sites(self, sites: Sequence[SiteLike] | SiteLike) -> list[Site]:
        """Returns the given sites parsed and checked against this model."""
        if isinstance(sites, str | Site):
            sites = [sites]
        return [check_site(s, self.dims) for s in sites]

    @contextlib.contextmanager
    def capture(
        self,
        sites: Sequence[SiteLike] | SiteLike,
        *,
        interventions: Sequence[Intervention] = (),
        grad: bool = False,
    ) -> Iterator[Cache]:
        """Records ``sites`` during every forward inside the block: ``with model.capture(...) as cache``."""
        with HookSession(
            self.hf,
            self.adapter,
            self.dims,
            capture=self.sites(sites),
            interventions=self._resolve(interventions),
            grad=grad,
        ) as cache:
            yield cache

    @contextlib.contextmanager
    def intervene(self, interventions: Sequence[Intervention]) -> Iterator[None]:
        """Applies ``interventions`` to every forward (and generation step) inside the block."""
        with HookSession(
            self.hf, self.adapter, self.dims, interventions=self._resolve(interventions)
        ):
            yield

    def run(
        self,
        inputs: Inputs | Tokens,
        *,
        capture: Sequence[SiteLike] | SiteLike = (),
        interventions: Sequence[Intervention] = (),
        grad: bool = False,
    ) -> Run:
        """Returns the logits and captured activations of one forward pass with interventions."""
        tokens = self.tokenize(inputs)
        with HookSession(
            self.hf,
            self.adapter,
            self.dims,
            capture=self.sites(capture) if capture else (),
            interventions=self._resolve(interventions),
            grad=grad,
        ) as cache:
            logits = self._forward(tokens, grad=grad)
        if interventions and not bool(torch.isfinite(logits).all()):
            raise InterventionError(
                "the interventions made the logits non-finite (NaN or inf) downstream of the "
                "edited sites; their values or factors are too large for this model"
            )
        return Run(logits, cache, tokens)

    def activations(
        self,
        inputs: Inputs | Tokens,
        sites: Sequence[SiteLike] | SiteLike,
        *,
        interventions: Sequence[Intervention] = (),
        stop_early: bool = True,
    ) -> Cache:
        """Returns the activations at ``sites``, running the forward only as far as the deepest
        of them needs (no later block, no unembedding) when ``stop_early``: what harvesting and
        max-activating passes use."""
        tokens = self.tokenize(inputs)
        wanted = self.sites(sites)
        deepest = max(
            (
                -1
                if s.component == "embed"
                else (self.dims.n_layers if s.layer is None else s.layer)
                for s in wanted
            ),
            default=self.dims.n_layers,
        )
        stopper: nn.Module | None = None
        if stop_early and deepest + 1 < self.dims.n_layers:
            stopper = self.adapter.block(self.hf, deepest + 1)
        elif stop_early and deepest < self.dims.n_layers:  # the last block: stop at the final norm
            stopper = get_module(self.hf, self.adapter.final_norm)
        session = HookSession(
            self.hf,
            self.adapter,
            self.dims,
            capture=wanted,
            interventions=self._resolve(interventions),
        )
        with session as cache:
            # Registered after the session's hooks, so the stopping module's own captures (embed
            # is block 0's input) run first.
            handle = None if stopper is None else stopper.register_forward_pre_hook(_stop_forward)
            try:
                self._forward(tokens, grad=False)
            except _StopForward:
                pass
            finally:
                if handle is not None:
                    handle.remove()
        return cache

    def generate(
        self,
        prompt: str | Sequence[str],
        *,
        max_new_tokens: int = 20,
        interventions: Sequence[Intervention] = (),
        capture: Sequence[SiteLike] = (),
        temperature: float = 0.0,
        seed: int = 0,
    ) -> Generation:
        """Returns continuations of ``prompt`` (greedy unless temperature > 0), interventions applied
        at every step; positions are absolute, and ``-1`` is the newest token at each step."""
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        tokens = self.tokenize(prompt)
        if bool((tokens.mask == 0).any()):
            raise InputError(
                "generation needs prompts of equal token length (positions must mean the same "
                "token in every row); generate them one at a time"
            )
        torch.manual_seed(seed)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        pad = self.tokenizer.pad_token_id
        with (
            HookSession(
                self.hf,
                self.adapter,
                self.dims,
                capture=self.sites(capture) if capture else (),
                interventions=self._resolve(interventions),
                generating=True,
            ) as cache,
            torch.no_grad(),
        ):
            out = self.hf.generate(  # type: ignore[operator]
                input_ids=tokens.ids,
                attention_mask=tokens.mask,
                pad_token_id=pad if pad is not None else self.tokenizer.eos_token_id,
                **kwargs,
            )
        n = tokens.ids.shape[1]
        texts = [self.tokenizer.decode(row[n:], skip_special_tokens=True) for row in out]
        return Generation(out, n, texts, cache)

    def _resolve(self, interventions: Sequence[Intervention]) -> list[Intervention]:
        """Returns the interventions with prompt references of mean/resample ablations captured."""
        if isinstance(interventions, Intervention):  # type: ignore[arg-type]
            interventions = [interventions]  # type: ignore[list-item]
        out: list[Intervention] = []
        for iv in interventions:
            if not isinstance(iv, Intervention):  # type: ignore[arg-type]
                raise InterventionError(
                    f"{iv!r} is not an intervention; use Patch, Add, Scale, Ablate or Apply"
                )
            if (
                isinstance(iv, Ablate)
                and iv.reference is not None
                and not isinstance(iv.reference, Tensor)
            ):
                site = iv.site.with_head(None)
                run = self.run(list(iv.reference), capture=[site])
                if bool((run.tokens.mask == 0).any()):
                    raise InputError(
                        f"reference prompts for {iv.method} ablation of {iv.site} differ in token "
                        "length; give prompts of one length so positions line up"
                    )
                ref = run.cache[site]
                iv = Ablate(
                    site,
                    iv.method,
                    reference=ref,
                    seed=iv.seed,
                    positions=iv.positions,  # type: ignore[arg-type]
                    heads=iv.heads if iv.site.head is None else (iv.site.head,),
                )
            out.append(iv)
        return out


def load(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device = "cpu",
    device_map: str | dict[str, int | str] | None = None,
    max_memory: dict[int | str, int | str] | None = None,
) -> Model:
    """Returns a Model: an embedded name (default SmolLM2-135M-Instruct), a local HF folder, a GGUF
    file, or a hub id already in the local HF cache. The embedded model is converted once and
    cached under ``$INTERPLAB_CACHE``. ``device_map``/``max_memory`` spread a model that does not
    fit one device over several (`interplab.models.load.load_hf`)."""
    loaded = load_hf(
        name_or_path, dtype=dtype, device=device, device_map=device_map, max_memory=max_memory
    )
    return Model(loaded.hf, loaded.tokenizer, loaded.adapter, loaded.info)
