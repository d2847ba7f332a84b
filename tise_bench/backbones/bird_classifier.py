"""TISE's CUB bird classifier for CUB IS*: Inception-v3 fine-tuned on CUB (50 classes + background).

What TISE runs (``image_realism/IS/bird/inception_score_star_bird.py``, the StackGAN bird model
``inception_finetuned_models/birds_valid299/model.ckpt``, a TF-slim checkpoint):

* network: TF-slim Inception-v3 (``inception/slim/inception_model.py``) with ``num_classes = 50 + 1`` (label 0
  is an unused background class), BatchNorm without scale (``scale=False``, epsilon 0.001), the
  exponential-moving-average version of every variable restored (``ExponentialMovingAverage(0.9999)
  .variables_to_restore()``), eval mode;
* input: ``scipy.misc.imresize(img, (299, 299, 3), interp="bilinear")`` (= PIL ``resize((299, 299),
  BILINEAR)`` on the uint8 RGB image), then ``img / 127.5 - 1`` in float32;
* output: ``logits[:, 1:]`` (background dropped), divided by T = 0.5980541706085205 and softmaxed by the
  metric.

This backbone provides ``logits`` = the 50 bird logits (background dropped, not divided by T).

The PyTorch form. TF-slim's Inception-v3 has the same layers, kernel sizes, strides, padding and
concatenation order as ``torchvision.models.inception_v3``; it differs in two points, both reproduced by
:class:`TFSlimInception3`: (1) the 3×3 stride-1 SAME average pools of the Mixed blocks exclude the padding
from the average (TF), where torchvision counts it (``count_include_pad=True``); (2) BatchNorm has no
gamma (a weight of 1). Unlike the 2015 graph behind inception-v3-compat, the last block (``mixed_8x8x2048b``)
uses an average pool, not a max pool. Expected file (``backbones.bird_classifier.weights``): a PyTorch state
dict with the key names and shapes of ``torchvision.models.inception_v3(num_classes=51, aux_logits=False)``
(``AuxLogits.*`` keys are ignored; ``*.bn.weight`` may be absent and is then 1, as in slim); raw, under
``state_dict``/``model``, or with ``module.`` prefixes.

Converting TISE's checkpoint (needs TensorFlow, on any machine)::

    import numpy as np, tensorflow as tf
    ck = "inception_finetuned_models/birds_valid299/model.ckpt"
    r = tf.train.load_checkpoint(ck)
    np.savez("bird_slim.npz", **{n: r.get_tensor(n) for n, _ in tf.train.list_variables(ck)})

then ``python -m tise_bench.backbones.bird_classifier bird_slim.npz bird_inception_v3.pth`` (this module's
:func:`convert_slim_variables`: slim variable names → torchvision keys, the ``/ExponentialMovingAverage``
values as TISE restores them, HWIO kernels → OIHW, fc ``[2048, 51]`` → ``[51, 2048]``, every shape checked).
NOT verified here: no TensorFlow and no copy of TISE's checkpoint were available when this was written, so
the variable-name table (derived from TISE's slim code: explicit scopes ``conv0``…``conv4`` and
``logits/logits``, ``Conv``, ``Conv_1``, … in creation order inside each branch scope) and the end-to-end
equality of our logits with TISE's TF graph are unchecked on the real file. Check once: IS* of a few CUB
images with TISE's script and with ``tise-bench`` on the converted file should agree to ~1e-4.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import WeightsNotFoundError
from .object_classifier import LocalClassifierBackbone, init_random_inception3, read_state_dict
from .registry import BackboneConfig, register_backbone

TISE_BIRD_TEMPERATURE = 0.5980541706085205
CUB_CLASSES = 50  # + 1 background logit (index 0) in the network


def __getattr__(attr: str) -> object:
    """``TFSlimInception3`` lives in :mod:`.tfslim.inception3` (torchvision's Inception blocks, imported only when a
    network is built: a fully cached run does not pay for importing torchvision)."""
    if attr == "TFSlimInception3":
        from .tfslim.inception3 import TFSlimInception3

        return TFSlimInception3
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# --- TF-slim variable names (TISE's inception_model.py) -> torchvision module prefixes ----------------------
_STEM = {
    "Conv2d_1a_3x3": "conv0",
    "Conv2d_2a_3x3": "conv1",
    "Conv2d_2b_3x3": "conv2",
    "Conv2d_3b_1x1": "conv3",
    "Conv2d_4a_3x3": "conv4",
}
_A = {
    "branch1x1": "branch1x1/Conv",
    "branch5x5_1": "branch5x5/Conv",
    "branch5x5_2": "branch5x5/Conv_1",
    "branch3x3dbl_1": "branch3x3dbl/Conv",
    "branch3x3dbl_2": "branch3x3dbl/Conv_1",
    "branch3x3dbl_3": "branch3x3dbl/Conv_2",
    "branch_pool": "branch_pool/Conv",
}
_B = {
    "branch3x3": "branch3x3/Conv",
    "branch3x3dbl_1": "branch3x3dbl/Conv",
    "branch3x3dbl_2": "branch3x3dbl/Conv_1",
    "branch3x3dbl_3": "branch3x3dbl/Conv_2",
}
_C = {
    "branch1x1": "branch1x1/Conv",
    "branch7x7_1": "branch7x7/Conv",
    "branch7x7_2": "branch7x7/Conv_1",
    "branch7x7_3": "branch7x7/Conv_2",
    **{f"branch7x7dbl_{i + 1}": f"branch7x7dbl/Conv{'' if i == 0 else f'_{i}'}" for i in range(5)},
    "branch_pool": "branch_pool/Conv",
}
_D = {
    "branch3x3_1": "branch3x3/Conv",
    "branch3x3_2": "branch3x3/Conv_1",
    **{f"branch7x7x3_{i + 1}": f"branch7x7x3/Conv{'' if i == 0 else f'_{i}'}" for i in range(4)},
}
_E = {
    "branch1x1": "branch1x1/Conv",
    "branch3x3_1": "branch3x3/Conv",
    "branch3x3_2a": "branch3x3/Conv_1",
    "branch3x3_2b": "branch3x3/Conv_2",
    "branch3x3dbl_1": "branch3x3dbl/Conv",
    "branch3x3dbl_2": "branch3x3dbl/Conv_1",
    "branch3x3dbl_3a": "branch3x3dbl/Conv_2",
    "branch3x3dbl_3b": "branch3x3dbl/Conv_3",
    "branch_pool": "branch_pool/Conv",
}
_MIXED = {
    "Mixed_5b": ("mixed_35x35x256a", _A),
    "Mixed_5c": ("mixed_35x35x288a", _A),
    "Mixed_5d": ("mixed_35x35x288b", _A),
    "Mixed_6a": ("mixed_17x17x768a", _B),
    "Mixed_6b": ("mixed_17x17x768b", _C),
    "Mixed_6c": ("mixed_17x17x768c", _C),
    "Mixed_6d": ("mixed_17x17x768d", _C),
    "Mixed_6e": ("mixed_17x17x768e", _C),
    "Mixed_7a": ("mixed_17x17x1280a", _D),
    "Mixed_7b": ("mixed_8x8x2048a", _E),
    "Mixed_7c": ("mixed_8x8x2048b", _E),
}
EMA = "/ExponentialMovingAverage"


def slim_conv_scopes() -> dict[str, str]:
    """torchvision ``BasicConv2d`` prefix -> TF-slim conv scope, for every conv of the network."""
    out = dict(_STEM)
    for tv, (scope, table) in _MIXED.items():
        out.update({f"{tv}.{k}": f"{scope}/{v}" for k, v in table.items()})
    return out


def convert_slim_variables(
    variables: Mapping[str, np.ndarray], num_classes: int = CUB_CLASSES
) -> dict[str, torch.Tensor]:
    """TF-slim checkpoint variables (name -> array) -> state dict of :class:`TFSlimInception3`.

    Uses the ``<name>/ExponentialMovingAverage`` value of every weight, beta, moving mean/variance and the fc,
    as TISE's ``saver.restore`` of ``variables_to_restore()`` does; a missing one is an error (TISE's restore
    would fail too). Every shape is checked against the network.
    """
    from .tfslim.inception3 import TFSlimInception3

    ref = TFSlimInception3(num_classes + 1).state_dict()
    sd: dict[str, torch.Tensor] = {}

    def get(name: str, want: torch.Size, transpose: tuple[int, ...] | None) -> torch.Tensor:
        if name + EMA not in variables:
            raise WeightsNotFoundError(
                f"slim variable {name + EMA!r} not in the checkpoint (TISE restores the moving "
                f"averages); is this TISE's birds_valid299/model.ckpt?"
            )
        a = np.asarray(variables[name + EMA], dtype=np.float32)
        if transpose is not None and a.ndim == len(transpose):
            a = a.transpose(transpose)
        t = torch.from_numpy(np.ascontiguousarray(a))
        if t.shape != want:
            raise WeightsNotFoundError(f"slim variable {name!r}: shape {tuple(a.shape)} does not fit {tuple(want)}")
        return t

    for tv, scope in slim_conv_scopes().items():
        sd[f"{tv}.conv.weight"] = get(f"{scope}/weights", ref[f"{tv}.conv.weight"].shape, (3, 2, 0, 1))
        sd[f"{tv}.bn.bias"] = get(f"{scope}/BatchNorm/beta", ref[f"{tv}.bn.bias"].shape, None)
        sd[f"{tv}.bn.running_mean"] = get(f"{scope}/BatchNorm/moving_mean", ref[f"{tv}.bn.running_mean"].shape, None)
        sd[f"{tv}.bn.running_var"] = get(f"{scope}/BatchNorm/moving_variance", ref[f"{tv}.bn.running_var"].shape, None)
        sd[f"{tv}.bn.weight"] = torch.ones_like(ref[f"{tv}.bn.weight"])  # slim batch_norm: scale=False
    sd["fc.weight"] = get("logits/logits/weights", ref["fc.weight"].shape, (1, 0))
    sd["fc.bias"] = get("logits/logits/biases", ref["fc.bias"].shape, None)
    return sd


def load_bird_checkpoint(path: str | Path, num_classes: int = CUB_CLASSES) -> torch.nn.Module:
    what = (
        "a PyTorch state dict of TISE's CUB bird Inception-v3 converted from its TF-slim checkpoint "
        "(see tise_bench/backbones/bird_classifier.py for the format and the conversion)"
    )
    sd = read_state_dict(path, "backbones.bird_classifier.weights", what)
    sd = {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}
    from .tfslim.inception3 import TFSlimInception3

    net = TFSlimInception3(num_classes + 1)
    for k, v in net.state_dict().items():  # slim has no BatchNorm gamma: absent weights are 1
        if k.endswith(".bn.weight") and k not in sd:
            sd[k] = torch.ones_like(v)
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:
        raise WeightsNotFoundError(
            f"{path} does not fit Inception-v3 with {num_classes} + 1 classes: "
            f"{str(e).splitlines()[-1].strip()}. {what}"
        ) from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsNotFoundError(
            f"{path} does not fit Inception-v3 with {num_classes} + 1 classes: missing "
            f"{missing[:3]}, unexpected {unexpected[:3]}. Give {what}."
        )
    return net


def _tf_input(batch: torch.Tensor) -> torch.Tensor:
    """TISE: ``img.astype(np.float32) / 127.5 - 1.0`` (NCHW here; the converted kernels are OIHW)."""
    return batch.float() / 127.5 - 1.0


def random_bird_classifier(num_classes: int, seed: int) -> torch.nn.Module:
    from .tfslim.inception3 import TFSlimInception3

    net = TFSlimInception3(num_classes + 1)
    init_random_inception3(net, torch.Generator().manual_seed(seed), _tf_input)
    return net.eval()


@dataclass(frozen=True)
class BirdClassifierConfig(BackboneConfig):
    """``backbones.bird_classifier``: ``weights`` is the converted TISE checkpoint; ``random=true`` a stand-in."""

    num_classes: int = CUB_CLASSES  # CUB bird classes, without the background logit


@register_backbone("bird_classifier", config=BirdClassifierConfig)
class BirdClassifierBackbone(LocalClassifierBackbone):
    preproc_version = "tise-cub-pil-bilinear299-pm1-v1"
    provides = ("logits",)
    weights_what = "TISE's CUB bird Inception-v3 (converted from its TF-slim checkpoint)"
    missing_fix = (
        "CUB IS* needs TISE's bird classifier: set backbones.bird_classifier.weights=<converted "
        ".pth> (see tise_bench/backbones/bird_classifier.py), or "
        "backbones.bird_classifier.random=true for smoke tests"
    )

    def __init__(
        self,
        *,
        weights: str | None = None,
        num_classes: int = BirdClassifierConfig.num_classes,
        random: bool = False,
        seed: int = 0,
        cache_dir: str | Path = ".cache",
        device: str = "auto",
    ) -> None:
        super().__init__()
        self._setup(
            weights=weights,
            random=random,
            seed=seed,
            cache_dir=cache_dir,
            device=device,
            stem=f"birdcls-inception_v3-{num_classes}bg",
            make_random=lambda: random_bird_classifier(num_classes, seed),
            load=lambda p: load_bird_checkpoint(p, num_classes),
            missing=self.missing_fix,
        )

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d.update(
            weights=self.weights_path.name,
            temperature=TISE_BIRD_TEMPERATURE,
            background_dropped=True,
            conversion_verified=False,
        )
        return d

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        # scipy.misc.imresize(img, (299, 299, 3), interp="bilinear") is PIL resize((299, 299), BILINEAR)
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(img.convert("RGB").resize((299, 299), Image.Resampling.BILINEAR))

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(_tf_input(batch.to(self.device)))
        return {"logits": logits[:, 1:]}  # index 0 is the background class TISE drops


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m tise_bench.backbones.bird_classifier",
        description="Convert TISE's TF-slim bird Inception (variables saved as .npz) "
        "to the PyTorch state dict backbones.bird_classifier.weights expects.",
    )
    ap.add_argument("npz", type=Path, help="np.savez of {variable name: value} of birds_valid299/model.ckpt")
    ap.add_argument("out", type=Path, help="output .pth")
    args = ap.parse_args(argv)
    with np.load(args.npz) as z:
        sd = convert_slim_variables({k: z[k] for k in z.files})
    torch.save(sd, args.out)
    print(f"wrote {args.out} ({len(sd)} tensors)")


if __name__ == "__main__":
    main()
