"""scikit-learn estimators on neurocore's C++ core.

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's parameters, defaults and fitted attributes (change
the import line and keep the rest); ``NeuralNetClassifier`` and ``NeuralNetRegressor`` put the same estimator
protocol around any :class:`neurocore.Sequential`. Needs scikit-learn: ``pip install "neurocore[sklearn]"``.
"""
try:
    import sklearn  # noqa: F401
except ImportError as exc:
    raise ImportError('neurocore.sklearn needs scikit-learn: pip install "neurocore[sklearn]"') from exc

from ._mlp import MLPClassifier, MLPRegressor
from ._neural_net import NeuralNetClassifier, NeuralNetRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]
