"""What a .tflite file spends its bytes on, and dropping the tensor names that cost the most after weights.

litert-torch names every tensor after its PyTorch module path ("converters.export.SubnetExport/
torch.nn.modules.container.Sequential_0/host.network.InvertedResidual_4/...;"): on the 32 px
MobileNet that is 12% of an fp32 subnet file and 19% of a per-tensor int8 one. The interpreters
never read them (signatures address tensors by index), so strip_tensor_names keeps only the
names of the graph's inputs and outputs, which device/engine/cascade.py falls back to when a file has
no signature.

    .venv/bin/python converters/flatbuffer.py dist/mobilenet-cifar10/model/*.tflite
"""
import argparse
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
# bytes per element of each quantization parameter vector (zero points are int64 in the schema)
QUANT_FIELD_BYTES = {"scale": 4, "zeroPoint": 8, "min": 4, "max": 4}
KINDS = ("int8", "int32", "float32", "quant_params", "names", "graph")


def anatomy(path: Path) -> dict:
    """Bytes of one file by kind: constant data per dtype, quantization parameters, tensor names,
    and 'graph' (everything else: operators, shapes, signatures, metadata, flatbuffer tables).
    Also 'file' (the total), 'ops' {op name: count} and 'weight_scales' {scales per tensor: tensors}."""
    model = flatbuffer_utils.read_model(Path(path))
    kinds = dict.fromkeys(KINDS, 0)
    ops, weight_scales, counted = {}, {}, set()
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            buffer = model.buffers[tensor.buffer]
            if buffer.data is not None and len(buffer.data) and tensor.buffer not in counted:
                counted.add(tensor.buffer)
                kind = TYPE_NAMES[tensor.type]
                kinds[kind] = kinds.get(kind, 0) + len(buffer.data)
                if kind == "int8" and tensor.quantization is not None:
                    n = len(tensor.quantization.scale)
                    weight_scales[n] = weight_scales.get(n, 0) + 1
            kinds["names"] += len(tensor.name or b"")
            q = tensor.quantization
            if q is not None:
                kinds["quant_params"] += sum(width * len(getattr(q, field))
                                             for field, width in QUANT_FIELD_BYTES.items()
                                             if getattr(q, field) is not None)
        for op in graph.operators:
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            ops[name] = ops.get(name, 0) + 1
    kinds["file"] = Path(path).stat().st_size
    kinds["graph"] = kinds["file"] - sum(v for k, v in kinds.items() if k not in ("graph", "file"))
    return {**kinds, "ops": ops, "weight_scales": dict(sorted(weight_scales.items()))}


def strip_tensor_names(path: Path) -> Path:
    """Rewrite `path` in place with no tensor names but the graph inputs' and outputs'."""
    model = flatbuffer_utils.read_model(Path(path))
    for graph in model.subgraphs:
        keep = set(graph.inputs) | set(graph.outputs)
        for index, tensor in enumerate(graph.tensors):
            if index not in keep:
                tensor.name = None
    flatbuffer_utils.write_model(model, Path(path))
    return Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    print("| file | bytes | " + " | ".join(KINDS) + " | weight scales per tensor: tensors | ops |")
    print("|---" * (len(KINDS) + 4) + "|")
    for path in args.files:
        a = anatomy(path)
        print(f"| {path.name} | {a['file']} | " + " | ".join(f"{a[k]} ({a[k] / a['file']:.0%})" for k in KINDS)
              + f" | {a['weight_scales']} | {a['ops']} |")


if __name__ == "__main__":
    main()
