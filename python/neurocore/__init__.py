"""neurocore: fast CPU training and inference of dense neural networks."""
from . import _core  # noqa: F401
