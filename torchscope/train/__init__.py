"""TensorFlow checkpoints without TensorFlow, after ``tf.compat.v1.train``."""

from ._bundle import CheckpointError
from ._init import init_from_checkpoint
from ._optimizers import (
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    RMSPropOptimizer,
)
from ._reader import CheckpointReader, list_variables, load_checkpoint
from ._saver import Saver, get_checkpoint_state, get_global_step, get_or_create_global_step
from ._state_file import latest_checkpoint

__all__ = [
    "AdagradOptimizer",
    "AdamOptimizer",
    "CheckpointError",
    "CheckpointReader",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "RMSPropOptimizer",
    "Saver",
    "get_checkpoint_state",
    "get_global_step",
    "get_or_create_global_step",
    "init_from_checkpoint",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
]
