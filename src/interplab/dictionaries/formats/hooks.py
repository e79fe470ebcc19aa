"""Other libraries' names for activation sites, mapped to and from our `Site` values.

SAELens and circuit-tracer name sites by TransformerLens hook points (``blocks.6.hook_resid_post``,
``blocks.6.ln2.hook_normalized``); sparsify by the HF module whose output (or, for transcoders,
input and output) it hooks (``layers.6``, ``layers.6.mlp``). The tables below are the only place
these names meet ours.

Caveat: TransformerLens folds each norm's weight into the next layer's weights by default, so its
``ln2.hook_normalized`` lacks the norm's scale that our ``mlp.in`` includes; a dictionary trained
on a folded model's ``ln2.hook_normalized`` reads a differently scaled input here.
"""

from __future__ import annotations

from interplab.dictionaries.config import DictionaryFileError
from interplab.sites import Component, Site

# TransformerLens per-layer hook -> component (read); the first name per component is written.
_TL_LAYER: dict[str, Component] = {
    "hook_resid_pre": "resid_pre",
    "hook_resid_mid": "resid_mid",
    "hook_resid_post": "resid_post",
    "hook_attn_out": "attn_out",
    "hook_mlp_out": "mlp_out",
    "ln2.hook_normalized": "mlp.in",
    "mlp.hook_pre": "mlp.pre",
    "mlp.hook_post": "mlp.post",
    "attn.hook_z": "attn.z",
    "attn.hook_q": "attn.q",
    "attn.hook_k": "attn.k",
    "attn.hook_v": "attn.v",
    "hook_mlp_in": "resid_mid",  # TransformerLens copies resid_mid into the MLP block here
    "mlp.hook_in": "mlp.in",  # circuit-tracer's names for the MLP's input and output
    "mlp.hook_out": "mlp_out",
}
_TL_MODEL: dict[str, Component] = {
    "hook_embed": "embed",
    "ln_final.hook_normalized": "final_norm",
}
_BLOCK_PREFIXES = ("model.layers.", "layers.", "transformer.h.", "h.", "gpt_neox.layers.")


def site_from_hook(name: str, *, source: str = "hook name") -> Site:
    """Returns the Site of a TransformerLens hook name such as ``blocks.6.hook_resid_post``."""
    if name in _TL_MODEL:
        return Site(None, _TL_MODEL[name])
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2] in _TL_LAYER:
        return Site(int(parts[1]), _TL_LAYER[parts[2]])
    raise DictionaryFileError(
        f"{source}: cannot map TransformerLens hook {name!r} to a site; known hooks: "
        f"{', '.join(_TL_MODEL)}, blocks.<layer>.{{{', '.join(_TL_LAYER)}}}"
    )


def hook_from_site(site: Site) -> str:
    """Returns the TransformerLens hook name of ``site`` (what SAELens writes)."""
    for name, component in _TL_MODEL.items():
        if site.component == component:
            return name
    if site.head is None:
        for name, component in _TL_LAYER.items():
            if site.component == component:
                return f"blocks.{site.layer}.{name}"
    raise DictionaryFileError(f"{site} has no TransformerLens hook name")


def layer_hook_site(layer: int, hook: str, *, source: str) -> Site:
    """Returns the Site of a per-layer hook name without its ``blocks.<layer>.`` prefix, as
    circuit-tracer's config.yaml gives it (``hook_resid_mid``, ``mlp.hook_in``)."""
    if hook.startswith("blocks."):
        return site_from_hook(hook.replace("{layer}", str(layer)), source=source)
    if hook not in _TL_LAYER:
        raise DictionaryFileError(f"{source}: unknown hook {hook!r}; known: {', '.join(_TL_LAYER)}")
    return Site(layer, _TL_LAYER[hook])


def layer_hook_name(site: Site) -> str:
    """Returns the per-layer hook name of ``site`` without its ``blocks.<layer>.`` prefix."""
    return hook_from_site(site).split(".", 2)[2]


def sites_from_module(name: str, transcode: bool, *, source: str) -> tuple[Site, Site]:
    """Returns (read, write) sites of a sparsify hookpoint: the module ``layers.6`` (its output is
    resid_post), ``layers.6.mlp`` (output mlp_out; a transcoder reads the MLP's input) or
    ``layers.6.self_attn`` (attn_out)."""
    for prefix in _BLOCK_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix) :].split(".", 1)
            if rest[0].isdigit():
                layer = int(rest[0])
                sub = rest[1] if len(rest) == 2 else ""
                if sub == "" and not transcode:
                    return Site(layer, "resid_post"), Site(layer, "resid_post")
                if sub == "mlp":
                    out = Site(layer, "mlp_out")
                    return (Site(layer, "mlp.in") if transcode else out), out
                if sub in ("self_attn", "attn", "attention") and not transcode:
                    return Site(layer, "attn_out"), Site(layer, "attn_out")
    raise DictionaryFileError(
        f"{source}: cannot map sparsify hookpoint {name!r} to sites; known: layers.<n> (SAE on "
        "resid_post), layers.<n>.mlp (SAE on mlp_out, or transcoder mlp.in -> mlp_out), "
        "layers.<n>.self_attn"
    )


def module_from_sites(site: Site, target: Site, transcode: bool) -> str:
    """Returns the sparsify hookpoint for (read, write) sites, or an error if it has none."""
    if site.layer is not None and site.head is None:
        layer = site.layer
        if not transcode and site == target:
            names = {"resid_post": f"layers.{layer}", "mlp_out": f"layers.{layer}.mlp"}
            names["attn_out"] = f"layers.{layer}.self_attn"
            if site.component in names:
                return names[site.component]
        if transcode and site == Site(layer, "mlp.in") and target == Site(layer, "mlp_out"):
            return f"layers.{layer}.mlp"
    raise DictionaryFileError(
        f"sparsify has no hookpoint for {site}"
        + ("" if site == target else f" -> {target}")
        + "; it hooks module outputs: resid_post, mlp_out, attn_out, or mlp.in -> mlp_out"
    )


__all__ = [
    "hook_from_site",
    "layer_hook_name",
    "layer_hook_site",
    "module_from_sites",
    "site_from_hook",
    "sites_from_module",
]
