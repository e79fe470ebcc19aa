"""Steering vectors (contrastive activation addition) with random-vector and prompt baselines.

    from interplab.techniques.steering import happiness_vector, steer
    result = steer(model, ["Today I"], happiness_vector(model), coefficients=[0, 4, 8])
    viz.save(result, "steering.png")

See `interplab.techniques.steering.steer` for the algorithm.
"""

from interplab.results.steering import (
    CONDITIONS,
    Condition,
    Reduction,
    ResidComponent,
    SteerConfig,
    SteeringResult,
    SteeringRow,
    SteeringVector,
    SteeringVectorConfig,
)
from interplab.techniques.steering.behaviour import (
    HAPPINESS,
    HAPPY_WORDS,
    JUDGE_SUFFIX,
    SAD_WORDS,
    Behaviour,
    Scorer,
    SteeringError,
    happiness_score,
)
from interplab.techniques.steering.steer import steer
from interplab.techniques.steering.vector import (
    feature_vector,
    happiness_vector,
    steering_interventions,
    steering_vector,
)

__all__ = [
    "CONDITIONS",
    "HAPPINESS",
    "HAPPY_WORDS",
    "JUDGE_SUFFIX",
    "SAD_WORDS",
    "Behaviour",
    "Condition",
    "Reduction",
    "ResidComponent",
    "Scorer",
    "SteerConfig",
    "SteeringError",
    "SteeringResult",
    "SteeringRow",
    "SteeringVector",
    "SteeringVectorConfig",
    "feature_vector",
    "happiness_score",
    "happiness_vector",
    "steer",
    "steering_interventions",
    "steering_vector",
]
