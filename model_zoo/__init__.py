"""The zooscope model zoo: trained models, their specs, data and training recipes.

Public API::

    from model_zoo import REGISTRY, get_spec, load
    model = load("vit-dot")             # eval mode, frozen, on the best device
    spec = get_spec("vit-dot")          # name, family, input contract, metrics, capabilities
"""

from .checkpoint import CheckpointError, best_device, build, load, load_spec
from .data import DataError, Split, load_split
from .registry import REGISTRY, get_spec
from .spec import CAPABILITIES, FAMILIES, InputSpec, ModelSpec, TrainRecipe

__all__ = [
    "CAPABILITIES", "FAMILIES", "REGISTRY", "CheckpointError", "DataError", "InputSpec", "ModelSpec",
    "Split", "TrainRecipe", "best_device", "build", "get_spec", "load", "load_spec", "load_split",
]
