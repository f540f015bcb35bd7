"""What a saved age model says: the names of its outputs and the ages its softmax spans.

Apart from the Keras layers (:mod:`agecheck.model.heads`) and the wrapper
(:mod:`agecheck.model.age_model`), so that both read them and running an exported model imports no Keras.
"""

from __future__ import annotations

#: The oldest age of a DEX model's softmax (over the ages 0..MAX_AGE).
MAX_AGE = 100
#: Names of a model's outputs: the age in years, and (DEX) the softmax over the ages 0..MAX_AGE.
AGE, AGE_PROBS = "age", "age_probs"
#: A member of the ensemble also gives the pooled features its age head reads (the under-age heads'
#: inputs, stage combine); the released model gives the under-age heads' probabilities, by age.
FEATURES = "features"
P_UNDER = "p_under_{age}"
