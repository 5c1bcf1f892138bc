"""torchscope: TensorFlow-1 variable sharing for PyTorch.

>>> import torchscope as ts
>>> with ts.variable_scope("conv1"):
...     w = ts.get_variable("weights", [5, 5, 32, 32])
>>> ts.name_of(w), tuple(w.shape)
('conv1/weights', (5, 5, 32, 32))
"""

from . import layers, nn, ops, train
from ._checkpoint import checkpoint
from ._collections import (
    add_to_collection,
    get_collection,
    global_variables,
    regularization_loss,
    regularization_losses,
    trainable_variables,
)
from ._errors import (
    DtypeMismatchError,
    FrozenModuleError,
    ShapeMismatchError,
    ValueDoesNotFitError,
    VariableExistsError,
    VariableNotFoundError,
)
from ._graph_keys import GraphKeys
from ._initializers import (
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
from ._lookup import get_variable
from ._materialize import materialize
from ._module import ScopedModule, check_optimizer
from ._registry import (
    apply_constraints,
    get_default_store,
    name_of,
    register_constraint_hook,
    reset_default_store,
    set_seed,
)
from ._scopes import (
    AUTO_REUSE,
    VariableScope,
    get_name_scope,
    get_variable_scope,
    name_scope,
    variable_scope,
)
from ._store import VariableStore
from ._summary import summary
from ._templates import Template, make_template
from ._tf_keywords import (
    VariableAggregation,
    VariableSynchronization,
    fixed_size_partitioner,
    min_max_variable_partitioner,
    variable_axis_size_partitioner,
)
from ._version import __version__ as __version__

__all__ = [
    "AUTO_REUSE",
    "DtypeMismatchError",
    "FrozenModuleError",
    "GraphKeys",
    "ScopedModule",
    "ShapeMismatchError",
    "Template",
    "VariableAggregation",
    "VariableScope",
    "VariableSynchronization",
    "ValueDoesNotFitError",
    "VariableExistsError",
    "VariableNotFoundError",
    "VariableStore",
    "add_to_collection",
    "apply_constraints",
    "check_optimizer",
    "checkpoint",
    "constant_initializer",
    "fixed_size_partitioner",
    "get_collection",
    "get_default_store",
    "get_name_scope",
    "get_variable",
    "get_variable_scope",
    "global_variables",
    "glorot_normal_initializer",
    "glorot_uniform_initializer",
    "init_from",
    "layers",
    "make_template",
    "materialize",
    "min_max_variable_partitioner",
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
    "set_seed",
    "summary",
    "train",
    "trainable_variables",
    "truncated_normal_initializer",
    "variable_axis_size_partitioner",
    "variable_scope",
    "variance_scaling_initializer",
    "zeros_initializer",
]
