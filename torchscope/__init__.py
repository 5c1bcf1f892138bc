"""torchscope: TensorFlow-1 variable sharing for PyTorch.

>>> import torchscope as ts
>>> with ts.variable_scope("conv1"):
...     w = ts.get_variable("weights", [5, 5, 32, 32])
>>> ts.name_of(w), tuple(w.shape)
('conv1/weights', (5, 5, 32, 32))
"""

from . import nn, ops, train
from ._default_store import get_default_store, name_of, reset_default_store
from ._graph_keys import GraphKeys
from .checkpoint import checkpoint
from .collection import (
    add_to_collection,
    apply_constraints,
    get_collection,
    global_variables,
    register_constraint_hook,
    regularization_loss,
    regularization_losses,
    trainable_variables,
)
from .initializers import (
    constant_initializer,
    glorot_normal_initializer,
    glorot_uniform_initializer,
    init_from,
    ones_initializer,
    orthogonal_initializer,
    random_normal_initializer,
    random_uniform_initializer,
    truncated_normal_initializer,
    variance_scaling_initializer,
    zeros_initializer,
)
from .module import ScopedModule, check_optimizer
from .scopes import (
    AUTO_REUSE,
    VariableScope,
    get_name_scope,
    get_variable_scope,
    name_scope,
    variable_scope,
)
from .store import VariableStore
from .summary import summary
from .templates import Template, make_template
from .variables import get_variable

__version__ = "0.1.0"

__all__ = [
    "AUTO_REUSE",
    "GraphKeys",
    "ScopedModule",
    "Template",
    "VariableScope",
    "VariableStore",
    "add_to_collection",
    "apply_constraints",
    "check_optimizer",
    "checkpoint",
    "constant_initializer",
    "get_collection",
    "get_default_store",
    "get_name_scope",
    "get_variable",
    "get_variable_scope",
    "global_variables",
    "glorot_normal_initializer",
    "glorot_uniform_initializer",
    "init_from",
    "make_template",
    "name_of",
    "name_scope",
    "nn",
    "ones_initializer",
    "ops",
    "orthogonal_initializer",
    "random_normal_initializer",
    "random_uniform_initializer",
    "register_constraint_hook",
    "regularization_loss",
    "regularization_losses",
    "reset_default_store",
    "summary",
    "train",
    "trainable_variables",
    "truncated_normal_initializer",
    "variable_scope",
    "variance_scaling_initializer",
    "zeros_initializer",
]
