"""The zooscope model zoo: trained models, their specs, data and training recipes.

Public API::

    from model_zoo import REGISTRY, get_spec, load
    model = load("vit-dot")             # eval mode, frozen, on the best device
    spec = get_spec("vit-dot")          # name, family, input contract, metrics, capabilities

The user's own models (issue 17)::

    model_zoo.register_folders(["/models/my-vit"])   # Hugging Face folders, checked before anything loads
    model_zoo.all_models()                           # name -> spec: the zoo, then folders, then plugins
    model_zoo.resolve_model("/models/my-vit")        # a name for a zoo name or a folder path
    model_zoo.current_sha256("my-vit")               # the weights' hash as they are on disk now

``REGISTRY`` stays the shipped zoo; code that lists models uses ``all_models()``.
"""

from .checkpoint import CheckpointError, best_device, build, load, load_spec
from .data import DataError, Split, load_split
from .registry import REGISTRY, all_models, current_sha256, get_spec, model_problems, register_folders, resolve_model
from .safety import ModelSourceError
from .spec import CAPABILITIES, FAMILIES, InputSpec, ModelSpec, TrainRecipe

__all__ = [
    "CAPABILITIES", "FAMILIES", "REGISTRY", "CheckpointError", "DataError", "InputSpec", "ModelSourceError",
    "ModelSpec", "Split", "TrainRecipe", "all_models", "best_device", "build", "current_sha256", "get_spec", "load",
    "load_spec", "load_split", "model_problems", "register_folders", "resolve_model",
]
