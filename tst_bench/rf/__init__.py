"""TsT-RF: a Random-Forest diagnostic on generic, leakage-free features of question and options.

It plugs into the same k-fold engine as the LLM backends (`--backend rf --trainer rf`): the
trainer fits on the training folds and writes its fitted state (JSON + npz, never pickle) into
the fold's adapter directory, the predictor reads it back and returns option probabilities and
s(x) under the same contract as the LLM predictors, and the fitted feature importances travel
into the fold and run results.
"""

from .backend import RFConfig, RFPredictor, RFTrainer

__all__ = ["RFConfig", "RFPredictor", "RFTrainer"]
