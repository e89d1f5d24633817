"""Keras graph mechanics that the layers, the cost model and the LCE rewrites share, each once:
walking a model's layers, the nodes of a functional model, rebuilding a functional model with
some layers substituted, TensorFlow's SAME-padding arithmetic and silencing Larq's logger.

```python
from larq_poke.keras_graph import rebuild_functional, walk_layers
names = [path for path, _ in walk_layers(model)]         # "resblock0-1/conv", ...

def swap(layer, args, inbound, output, new):               # None: call the layer as it is
    return MyDeployable(layer)(args[0]) if isinstance(layer, MyLayer) else None
deployable = rebuild_functional(model, swap)
```
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = [
    "walk_layers",
    "model_nodes",
    "node_inputs",
    "node_output",
    "consumers",
    "producers",
    "rebuild_functional",
    "same_output_size",
    "same_padding",
    "same_paddings",
    "quiet_larq_warnings",
]


def walk_layers(layer, prefix: str = "") -> Iterator[Tuple[str, object]]:
    """``(path, layer)`` for every layer below ``layer``, depth first: nested models and layers
    that own sublayers are entered; a nested layer's path is ``outer/inner``."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from walk_layers(child, prefix=f"{path}/")


def _model_node(model, layer):
    """The node of ``layer`` that belongs to ``model`` (a layer reused by an earlier rebuild
    has nodes in other models too)."""
    nodes = [
        node
        for index, node in enumerate(layer._inbound_nodes)
        if f"{layer.name}_ib-{index}" in model._network_nodes
    ]
    if len(nodes) != 1:
        raise ValueError(
            f"layer {layer.name!r} is called {len(nodes)} times in model {model.name!r}; only "
            "functional models that call each layer once are supported"
        )
    return nodes[0]


def node_inputs(model, layer) -> list:
    """The input tensors of ``layer``'s call in functional ``model``."""
    return list(_model_node(model, layer).keras_inputs)


def node_output(model, layer):
    """The output tensor of ``layer``'s call in functional ``model``."""
    outputs = _model_node(model, layer).outputs
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def model_nodes(model) -> List[Tuple[object, list, object]]:
    """``(layer, inbound tensors, output tensor)`` of every non-input layer of a functional
    ``model``, in topological order."""
    import tensorflow as tf

    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError(f"a functional Keras model is needed, got {type(model).__name__}")
    nodes = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        nodes.append((layer, node_inputs(model, layer), node_output(model, layer)))
    return nodes


def consumers(model) -> Dict[int, list]:
    """``{id(tensor): [layers that read it]}`` over the nodes of functional ``model``."""
    readers: Dict[int, list] = {}
    for layer, inbound, _ in model_nodes(model):
        for tensor in inbound:
            readers.setdefault(id(tensor), []).append(layer)
    return readers


def producers(model) -> Dict[int, object]:
    """``{id(tensor): the layer that outputs it}`` over the nodes of functional ``model``."""
    return {id(output): layer for layer, _, output in model_nodes(model)}


def rebuild_functional(model, substitute: Callable, *, name: Optional[str] = None):
    """A new functional model with ``model``'s graph, layers replaced where ``substitute`` says.

    ``substitute(layer, args, inbound, output, new)`` gets the original layer, its new input
    tensors, its original input tensors, its original output and ``new(tensor)``, which maps any
    original tensor computed so far to its new counterpart (to replace a whole unit of layers at
    its last layer); it returns the new output tensor, or ``None`` to call the original layer on
    ``args``. The original model is not modified (its unsubstituted layers are shared with the
    new one).
    """
    import tensorflow as tf

    nodes = model_nodes(model)
    tensors = {}
    for tensor in model.inputs:
        tensors[id(tensor)] = tf.keras.Input(
            batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name.split(":")[0]
        )
    new_inputs = [tensors[id(t)] for t in model.inputs]
    for layer, inbound, output in nodes:
        args = [tensors[id(t)] for t in inbound]
        result = substitute(layer, args, inbound, output, lambda t: tensors[id(t)])
        if result is None:
            result = layer(args if len(args) > 1 else args[0])
        tensors[id(output)] = result
    outputs = [tensors[id(t)] for t in model.outputs]
    return tf.keras.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=name or model.name,
    )


def same_output_size(size, stride: int):
    """Output length of a SAME-padded conv or pool along one axis: ceil(size / stride).
    ``size`` may be an int or a scalar tensor."""
    return (size + stride - 1) // stride


def same_padding(size, kernel: int, stride: int):
    """TensorFlow's SAME padding ``(before, after)`` along one axis (the smaller half first).
    ``size`` may be an int or a scalar tensor; the result has the same kind."""
    total = (same_output_size(size, stride) - 1) * stride + kernel - size
    if isinstance(total, int):
        total = max(total, 0)
    else:
        import tensorflow as tf

        total = tf.maximum(total, 0)
    return total // 2, total - total // 2


def same_paddings(shape: Sequence, kernel_size: Sequence[int], strides: Sequence[int]):
    """SAME paddings ``[[top, bottom], [left, right]]`` for a static (N, H, W, C) shape."""
    return [
        list(same_padding(int(n), int(k), int(s)))
        for n, k, s in zip((shape[1], shape[2]), kernel_size, strides)
    ]


@contextlib.contextmanager
def quiet_larq_warnings():
    """Silence Larq's logger below ERROR inside the block (its "binary quantizer without
    kernel_constraint" warning: PokeBNN trains unconstrained latent weights as its official code
    does, BNext sets its constraint after Larq has checked, deploy rewrites build inference-only
    binary convs)."""
    logger = logging.getLogger("larq")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
