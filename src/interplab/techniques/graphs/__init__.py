"""Attribution graphs (circuit tracing with transcoders), checked by interventions.

Modules: `replacement` (the local replacement model of one prompt), `attribution` (direct
effects in batched backward passes), `prune` (cumulative-influence pruning and the scores),
`check` (ablations in the real model), `export` (the circuit-tracer / Neuronpedia JSON),
`build` (`attribution_graph`, all of it in one call), `recipe` (transcoders for the embedded
model).
"""
