"""``GraphKeys``: TensorFlow's standard collection names."""

from __future__ import annotations

__all__ = ["GraphKeys"]


class GraphKeys:
    """TensorFlow's standard collection names (``tf.compat.v1.GraphKeys``, same values).

    A store fills three of them itself: ``GLOBAL_VARIABLES``, ``TRAINABLE_VARIABLES`` and
    ``REGULARIZATION_LOSSES`` (what ``add_to_collection`` puts there is listed with them,
    in creation order). The others are plain collection names for ported code
    (``UPDATE_OPS``, ``LOSSES``, ...): they hold what ``add_to_collection`` put there.

    >>> _ = ts.get_variable("w", [1]); _ = ts.get_variable("step", [], trainable=False)
    >>> [ts.name_of(v) for v in ts.get_collection(ts.GraphKeys.TRAINABLE_VARIABLES)]
    ['w']
    >>> ts.GraphKeys.GLOBAL_VARIABLES, ts.GraphKeys.UPDATE_OPS
    ('variables', 'update_ops')
    """

    # Filled by the store.
    GLOBAL_VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    VARIABLES = GLOBAL_VARIABLES  # TensorFlow's deprecated alias
    # Plain names: only add_to_collection fills them.
    LOCAL_VARIABLES = "local_variables"
    METRIC_VARIABLES = "metric_variables"
    MODEL_VARIABLES = "model_variables"
    SUMMARIES = "summaries"
    QUEUE_RUNNERS = "queue_runners"
    TABLE_INITIALIZERS = "table_initializer"
    ASSET_FILEPATHS = "asset_filepaths"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    CONCATENATED_VARIABLES = "concatenated_variables"
    SAVERS = "savers"
    WEIGHTS = "weights"
    BIASES = "biases"
    ACTIVATIONS = "activations"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    SAVEABLE_OBJECTS = "saveable_objects"
    RESOURCES = "resources"
    LOCAL_RESOURCES = "local_resources"
    TRAINABLE_RESOURCE_VARIABLES = "trainable_resource_variables"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    READY_OP = "ready_op"
    READY_FOR_LOCAL_INIT_OP = "ready_for_local_init_op"
    SUMMARY_OP = "summary_op"
    GLOBAL_STEP = "global_step"
    EVAL_STEP = "eval_step"
    TRAIN_OP = "train_op"
    COND_CONTEXT = "cond_context"
    WHILE_CONTEXT = "while_context"
