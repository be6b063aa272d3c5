"""prunq.save / prunq.load: a compressed model as one safetensors file.

The tensors are the model's state_dict (tensors that share storage, such as tied embeddings,
are stored once); the safetensors metadata holds a JSON header under "prunq":

    {"format": 1, "model": "BertModel", "recipe": "int8", "fused": [block names],
     "gelu_fused": [intermediate block names],
     "modules": {name: {"type": "Int8Linear", <constructor arguments>}}, "aliases": {key: key}}

load(path, model) takes the float model of the same architecture, checks the whole file against
it (every key, shape and module type) before changing anything, then swaps and fills it.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from .compress import RECORD
from .compress.fuse_gelu import fusable as gelu_fusable, fuse_block as fuse_gelu_block
from .compress.fuse_norms import fusable, fuse_block
from .compress.heads import restore_heads
from .compress.swap import linear_features, set_submodule
from .nn import BinaryLinear, CSRLinear, Int4Embedding, Int8Embedding, Int8Linear, LowRankLinear, Sparse24Linear

FORMAT = 1
_EMBEDDINGS = (Int8Embedding, Int4Embedding)
_MODULE_TYPES = {cls.__name__: cls for cls in (Int8Linear, LowRankLinear, *_EMBEDDINGS, Sparse24Linear,
                                                        CSRLinear, BinaryLinear)}


def save(model: nn.Module, path: str | os.PathLike) -> None:
    """Writes `model` (compressed by prunq.compress, or a float model) to `path`."""
    from safetensors.torch import save_file

    record = getattr(model, RECORD, None) or {"recipe": None, "fused": [], "gelu_fused": [], "modules": {}}
    tensors, aliases, seen = {}, {}, {}
    for key, tensor in model.state_dict().items():
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                    tuple(tensor.stride()), tensor.dtype) if tensor.numel() else None
        if identity in seen:
            aliases[key] = seen[identity]
            continue
        if identity is not None:
            seen[identity] = key
        tensors[key] = tensor.detach().to("cpu").contiguous()
    header = {"format": FORMAT, "model": type(model).__name__, **record, "aliases": aliases}
    save_file(tensors, os.fspath(path), metadata={"prunq": json.dumps(header)})


def load(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Loads a file written by prunq.save into `model`, the float model it was made from (same
    architecture and config, weights irrelevant), and returns it. Raises ValueError naming what
    does not match; the model is left untouched unless everything matches (a model built from a
    config that records pruned heads is first given that shape, as prunq.compress.restore_heads)."""
    header, tensors = _read(path)
    if header.get("model") != type(model).__name__:
        raise ValueError(f"{path}: holds a {header.get('model')!r}, but model is a {type(model).__name__!r}")
    if getattr(model, RECORD, None) is not None:
        raise ValueError("model: already compressed; load into the float model")
    restore_heads(model)
    fused = _list_of_names(header, "fused", path)
    for name in fused:
        if not fusable(_submodule(model, name, path, "fused block")):
            raise ValueError(f"{path}: block {name!r} cannot be fused in this model")
    built = _build_modules(header, model, path)
    gelu_fused = _list_of_names(header, "gelu_fused", path)
    for name in gelu_fused:
        if not gelu_fusable(_submodule(model, name, path, "GELU block"), built.get(f"{name}.dense")):
            raise ValueError(f"{path}: block {name!r} cannot take its GELU into an int8 GEMM in this model")
    for key, source in _dict_of(header, "aliases", path).items():
        if source not in tensors:
            raise ValueError(f"{path}: header: alias {key!r} points at {source!r}, which the file does not hold")
        tensors[key] = tensors[source]
    _check_keys(model, built, tensors, path)

    for name in fused:
        fuse_block(model.get_submodule(name))
    for name, module in built.items():
        if "." not in name or name.rpartition(".")[0] not in built:
            device = _device_of(model.get_submodule(name))
            set_submodule(model, name, module.to(device))
    for name in gelu_fused:
        fuse_gelu_block(model.get_submodule(name))
    model.load_state_dict(tensors, strict=True)
    setattr(model, RECORD, {"recipe": header.get("recipe"), "fused": fused, "gelu_fused": gelu_fused,
                            "modules": {name: spec for name, spec in header["modules"].items()}})
    return model


def _read(path) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with safe_open(os.fspath(path), framework="pt") as file:
            metadata = file.metadata() or {}
        tensors = load_file(os.fspath(path))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ValueError(f"{path}: not a readable safetensors file (truncated or damaged?): {error}") from None
    if "prunq" not in metadata:
        raise ValueError(f"{path}: not written by prunq.save (no 'prunq' header)")
    try:
        header = json.loads(metadata["prunq"])
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: header is not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path}: header: expected format {FORMAT}, got {header.get('format') if isinstance(header, dict) else header!r}")
    return header, tensors


def _dict_of(header: dict, key: str, path) -> dict:
    value = header.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{path}: header: {key!r} should be an object, got {type(value).__name__}")
    return value


def _list_of_names(header: dict, key: str, path) -> list[str]:
    value = header.get(key, [])
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"{path}: header: {key!r} should be a list of module names")
    return value


def _submodule(model: nn.Module, name: str, path, what: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"{path}: {what} {name!r} does not exist in this {type(model).__name__}") from None


def _device_of(module: nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _shape_of(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    return linear_features(module)


def _build_modules(header: dict, model: nn.Module, path) -> dict[str, nn.Module]:
    """Empty modules of the recorded types, parents before the modules nested in them, each
    checked against the module of the float model it replaces."""
    built: dict[str, nn.Module] = {}
    for name, spec in sorted(_dict_of(header, "modules", path).items(), key=lambda item: item[0].count(".")):
        spec = dict(spec) if isinstance(spec, dict) else {}
        cls = _MODULE_TYPES.get(spec.pop("type", None))
        if cls is None:
            raise ValueError(f"{path}: header: module {name!r} has an unknown type")
        try:
            module = cls(**spec)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: header: module {name!r}: {error}") from None
        parent_name, _, child = name.rpartition(".")
        if parent_name in built:
            if not hasattr(built[parent_name], child):
                raise ValueError(f"{path}: header: {parent_name!r} has no part {child!r}")
            original = getattr(built[parent_name], child)
        else:
            original = _submodule(model, name, path, "module")
        expected = _shape_of(original)
        shape = (module.num_embeddings, module.embedding_dim) if isinstance(module, _EMBEDDINGS) else (
            module.in_features, module.out_features)
        if expected != shape or isinstance(module, _EMBEDDINGS) != isinstance(original, nn.Embedding):
            raise ValueError(f"{path}: module {name!r} is a {cls.__name__} of shape {shape} in the file, "
                             f"but a {type(original).__name__} of shape {expected} in this model")
        if isinstance(module, LowRankLinear):
            module.to(original.weight.dtype)  # the Linear or Conv1D it replaces
        if parent_name in built:
            setattr(built[parent_name], child, module)
        built[name] = module
    return built


def _check_keys(model: nn.Module, built: dict[str, nn.Module], tensors: dict[str, torch.Tensor], path) -> None:
    """The file's keys and shapes against those of the model as it will be after the swaps."""
    tops = [name for name in built if "." not in name or name.rpartition(".")[0] not in built]
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()
                if not any(key.startswith(f"{top}.") for top in tops)}
    for top in tops:
        expected.update({f"{top}.{key}": tuple(value.shape) for key, value in built[top].state_dict().items()})
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(key for key in set(expected) & set(tensors) if tuple(tensors[key].shape) != expected[key])
    problems = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for label, keys in (("missing", missing), ("not in this model", unexpected),
                                    ("shape differs", wrong)) if keys]
    if problems:
        raise ValueError(f"{path}: does not match this {type(model).__name__}: " + "; ".join(problems))
