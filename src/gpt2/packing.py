"""Linear weights prepacked in oneDNN's blocked layout, for faster inference on CPU.

On CPU, `F.linear` in bfloat16 hands the product to oneDNN, whose kernels read the weight in a blocked
layout, so every call first reorders the whole weight into it. When the activations are a few rows, as in
a decoding step, that reorder costs about as much as the product (docs/benchmarks.md, prepacked weights).
`pack_for_cpu` does that reorder once, when a model is made ready for inference (what torch.compile's
freezing pass does inside the graphs it compiles), and lets oneDNN apply the MLP's GELU to the product's
float32 accumulators before they are rounded, instead of in a second pass over the rounded output.

What changes numerically: in bfloat16 the products are bit-identical to the unpacked model's (same
kernels, same values) and the GELU output is rounded once instead of twice (it differs from the
unpacked model's by at most one bfloat16 step); in float32, `F.linear` runs MKL's GEMM and the packed
layer oneDNN's, which round differently (about 1e-6 relative). Tested against the unpacked model.

For inference only: the packed weights are not parameters and the packed products have no backward (a
packed layer refuses inputs that require gradients). Pack after moving the model to its final dtype
(`.to()` does not convert packed weights). GPT-2 ties the token embedding to the vocabulary projection;
a lookup cannot read the blocked layout, so the embedding keeps its plain weight and `lm_head` packs a
second copy (vocab_size x n_embd values: 77 MB for 124M in bfloat16; the CLI's `--no-pack` saves it).
`state_dict` gives the ordinary layout, so a packed model saves an ordinary checkpoint; `load_state_dict`
and `copy.deepcopy` repack.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from gpt2.errors import GPT2Error
from gpt2.hardware import packed_dtypes
from gpt2.model import GPT

# The rows a product is expected to have, which oneDNN may use to pick the blocking. The layout it picks on
# AVX-512 machines is the same for 1 to 1024 rows; 32 (a sampling batch) is the case that matters most.
_ROWS_HINT = 32


class PackingError(GPT2Error, ValueError):
    """The model or the machine cannot use packed weights."""


def _pack(weight: torch.Tensor) -> torch.Tensor:
    """An (out_features, in_features) weight in oneDNN's blocked layout."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _ROWS_HINT)


def can_pack(model: GPT) -> bool:
    """True if oneDNN can prepack this model's weights here: a float32 or bfloat16 model on the CPU, with
    the kernels for its dtype (AVX2-only CPUs have no bf16 layout; see `gpt2.hardware.packed_dtypes`)."""
    return model.device.type == "cpu" and model.dtype in packed_dtypes()


class PackedLinear(nn.Module):
    """`nn.Linear` whose weight is stored in oneDNN's blocked layout (CPU, float32 or bfloat16)."""

    def __init__(self, linear: nn.Linear, gelu: str | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.dtype = linear.weight.dtype
        self.gelu = gelu  # None, or the GELU approximation ("tanh", "none") applied to the product
        # not a buffer: Module.to() and state_dict would treat the blocked tensor as an ordinary one
        self.packed = _pack(linear.weight)
        self.bias = nn.Parameter(linear.bias.detach(), requires_grad=False) if linear.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.dtype or x.device.type != "cpu":
            raise PackingError(f"this layer's weights were packed for {self.dtype} on the CPU; got "
                               f"{x.dtype} on {x.device} (pack after moving the model)")
        if x.requires_grad and torch.is_grad_enabled():  # the packed product has no backward
            raise PackingError("packed layers are for inference: their products have no gradients "
                               "(use the model before pack_for_cpu to train or to differentiate its inputs)")
        x2 = x.reshape(-1, self.in_features)
        if self.gelu is None:
            y = torch.ops.mkldnn._linear_pointwise(x2, self.packed, self.bias, "none", [], "")
        else:
            y = torch.ops.mkldnn._linear_pointwise(x2, self.packed, self.bias, "gelu", [], self.gelu)
        return y.view(*x.shape[:-1], self.out_features)

    def weight_dense(self) -> torch.Tensor:
        """The weight in the ordinary (out_features, in_features) layout."""
        return self.packed.to_dense()

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # an unpacked model's state_dict: checkpoints written from a packed model are ordinary ones
        destination[prefix + "weight"] = self.weight_dense()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "weight"
        if key in state_dict:  # an ordinary weight: pack it
            weight = state_dict[key]
            if weight.shape != (self.out_features, self.in_features):
                error_msgs.append(f"size mismatch for {key}: expected {(self.out_features, self.in_features)}, "
                                  f"got {tuple(weight.shape)}")
            else:
                self.packed = _pack(weight.to(self.dtype))
        elif strict:
            missing_keys.append(key)
        rest = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def __deepcopy__(self, memo):
        # the blocked tensor has no storage to copy; copy the rest and repack from the ordinary layout
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            if name != "packed":
                new.__dict__[name] = copy.deepcopy(value, memo)
        new.packed = _pack(self.weight_dense())
        return new

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}, {str(self.dtype).removeprefix('torch.')}, packed" \
               + (f", gelu={self.gelu}" if self.gelu else "")


def pack_for_cpu(model: GPT) -> GPT:
    """Replace every nn.Linear (attention, MLP, lm_head) by a PackedLinear under the same name, in place; each MLP's
    GELU moves into its c_fc (its `act` becomes nn.Identity). Returns the model in eval mode without gradients.
    Raises PackingError where `can_pack` is False."""
    if not can_pack(model):
        raise PackingError(f"packed weights need a float32 or bfloat16 model on a CPU whose oneDNN packs that "
                           f"dtype; this one is {model.dtype} on {model.device}, and this machine packs "
                           f"{sorted(map(str, packed_dtypes())) or 'none'}")
    model.eval().requires_grad_(False)
    for block in model.transformer.h:
        mlp = block.mlp
        if isinstance(mlp.c_fc, nn.Linear) and isinstance(mlp.act, nn.GELU):
            mlp.c_fc, mlp.act = PackedLinear(mlp.c_fc, gelu=mlp.act.approximate), nn.Identity()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, PackedLinear(child))
    return model


def pack_if_possible(model: GPT) -> GPT:
    """`pack_for_cpu(model)` where `can_pack(model)`; otherwise the model as it is, in the plain layout that
    works (GPU, fp16, bf16 on a CPU without oneDNN's bf16 layout, no oneDNN)."""
    return pack_for_cpu(model) if can_pack(model) else model


def is_packed(model: nn.Module) -> bool:
    return any(isinstance(m, PackedLinear) for m in model.modules())
