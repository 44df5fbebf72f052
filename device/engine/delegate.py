"""Whether a delegate (XNNPACK) runs a model file's heavy layers, read from the runtime's node list."""
from __future__ import annotations


HEAVY_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})  # where a frame's time goes


def runs_on_delegate(interpreter) -> bool | None:
    """Whether a delegate (XNNPACK, applied by default) took every convolution and fully connected
    layer of a file; None where the interpreter cannot say. Those layers left on the builtin
    kernels make a file many times slower: tflite-runtime 2.14's XNNPACK takes no int8 operator.
    A delegate taking some operator is not enough: it may take only a float tail (the exit
    statistics) of a file whose int8 body runs on the builtin kernels."""
    ops_details = getattr(interpreter, "_get_ops_details", None)  # the runtimes' own listing of nodes
    if ops_details is None:
        return None
    ops = ops_details()
    taken = _delegated_nodes(ops)
    return not any(op["op_name"] in HEAVY_OPS and i not in taken for i, op in enumerate(ops))


def _delegated_nodes(ops: list) -> set:
    """Indices of the nodes a delegate replaced. The listing keeps the replaced nodes and adds one
    DELEGATE node per partition, with the partition's boundary tensors as its inputs and
    outputs: a partition's nodes are those met walking back from its outputs to its inputs."""
    producer = {t: i for i, op in enumerate(ops) if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    taken = set()
    for delegate in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = set(delegate["inputs"])
        pending = list(delegate["outputs"])
        while pending:
            tensor = pending.pop()
            node = producer.get(tensor)
            if tensor in boundary or node is None or node in taken:
                continue
            taken.add(node)
            pending.extend(ops[node]["inputs"])
    return taken
