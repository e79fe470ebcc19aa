"""Max-activating dataset examples, streamed over a corpus in constant memory.

    from interplab.techniques.top_examples import top_examples
    result = top_examples(model, corpus, site="L15.mlp.post", neurons=[7, 11], k=20)
    viz.top_examples.save_page(result, "top.html")

`stream` holds the algorithm and the public function, `state` the streaming state, `checkpoint`
its saving and resuming, `finish` the step from state to result. `stream.prepare`, `stream.stream`,
`stream.conclude` and `state.merge_states` are the split and merge points that
`interplab.distributed.top_examples` streams corpus shards with.
"""

from interplab.results.top_examples import (
    Example,
    Samples,
    TopExamplesConfig,
    TopExamplesError,
    TopExamplesResult,
    Unit,
)
from interplab.techniques.top_examples.stream import Directions, top_examples

__all__ = [
    "Directions",
    "Example",
    "Samples",
    "TopExamplesConfig",
    "TopExamplesError",
    "TopExamplesResult",
    "Unit",
    "top_examples",
]
