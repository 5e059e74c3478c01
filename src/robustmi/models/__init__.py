"""robustmi.models: encoders, heads, CIFAR-style nets, a registry, save/load/resolve, and layer taps.

Every model takes images in [0, 1] (it normalises them itself) and follows one interface:
``forward_features(x)`` -> (B, D) representation, ``feature_dim``; classifiers add ``forward_head(z)`` -> (B,
K) and ``num_classes``. Importing this package imports every model module, so all registrations run.
"""

from robustmi.models import baseline_h, densenet, resnet, vgg  # noqa: F401  (registers the models)
from robustmi.models.baseline_h import BaselineHEncoder
from robustmi.models.factory import load_factory
from robustmi.models.heads import HEAD_KINDS, Classifier, Head, create_head
from robustmi.models.io import (
    build_from_spec,
    check_classifier,
    check_model_outputs,
    get_model_spec,
    load_model,
    load_state_dict_strict,
    resolve_model,
    save_model,
    unwrap_model,
)
from robustmi.models.layers import Normalize
from robustmi.models.registry import create_model, list_models, register_model
from robustmi.models.taps import LayerTap, extract_layer, list_layers

__all__ = [
    "HEAD_KINDS",
    "BaselineHEncoder",
    "Classifier",
    "Head",
    "LayerTap",
    "Normalize",
    "build_from_spec",
    "check_classifier",
    "check_model_outputs",
    "create_head",
    "create_model",
    "extract_layer",
    "get_model_spec",
    "list_layers",
    "list_models",
    "load_factory",
    "load_model",
    "load_state_dict_strict",
    "register_model",
    "resolve_model",
    "save_model",
    "unwrap_model",
]
