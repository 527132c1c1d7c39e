"""Networks written with ``nn.Module`` (no torchvision), and their entries in kfw's registry.

Every network is built as ``Net(input_shape=..., n_outputs=..., **params)`` by
:class:`kfw.dl.estimator.TorchClassifier` once the data's shape is known:

- :class:`MLP`: the NumPy MLP of ``scratch_models/mlp.py`` layer for layer (Linear, batch norm,
  ReLU, dropout blocks; a linear head whose softmax lives in the loss), He-normal weights,
  plus an embedding per categorical column for tabular data.
- :class:`LeNet`: conv-pool-conv-pool-fc (LeCun et al., 1998), with batch norm and ReLU.
- :class:`ResNet`: residual blocks (He et al., "Deep residual learning", CVPR 2016) of two 3x3
  convolutions with batch norm and an identity or 1x1-projection shortcut; stages and widths
  configurable, ``batchnorm`` and ``residual`` switchable off for the ablation.

The image networks take flat rows too (``input_shape=(d,)``): zero-padded to the next square
and seen as one-channel ``side x side`` images, so every registered model runs on any table.

The registry factories (``torch_resnet_classifier`` ...) put the estimator behind kfw's design
matrix (``models._design``: categories one-hot or as integer codes, numbers imputed and, for
tabular nets, standardised; fitted on the training part) and split one flat parameter dict
between the network (``widths``, ``batchnorm``, ``residual`` ...), the design matrix
(``scaler``, ``embed``) and the training recipe (``augment``, ``epochs``, ``lr`` ...).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from torch import nn

from kfw.errors import ConfigError
from models._design import design
from models._tabular import TabularModel, categorical_columns

# networks


def _he_init(module: nn.Module) -> None:
    # He-normal weights N(0, 2 / fan_in), zero biases: as scratch_models/mlp.py starts
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _as_image(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Flat rows (B, d) as (B, 1, side, side) images, zero-padded; images pass through."""
    if len(input_shape) == 3:
        return x
    d = input_shape[0]
    side = math.isqrt(d - 1) + 1 if d > 1 else 1
    return F.pad(x, (0, side * side - d)).view(len(x), 1, side, side)


def _image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) == 3:
        return tuple(input_shape)  # type: ignore[return-value]
    d = input_shape[0]
    side = math.isqrt(d - 1) + 1 if d > 1 else 1
    return (1, side, side)


class MLP(nn.Module):
    """Affine -> batch norm -> ReLU -> dropout blocks and a linear head.

    ``cardinalities`` (one per categorical column, the last ``len(cardinalities)`` inputs,
    coded 0..c-1 with -1 for unseen) switch on one embedding of ``embedding_dim`` (default
    ``min(16, (c + 2) // 2)``) per column, concatenated to the numeric inputs.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        hidden_layer_sizes: tuple[int, ...] = (512, 256),
        dropout: float = 0.2,
        batchnorm: bool = True,
        cardinalities: tuple[int, ...] = (),
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        n_in = math.prod(input_shape)
        self.n_cat = len(cardinalities)
        self.embeddings = nn.ModuleList(
            nn.Embedding(c + 1, embedding_dim or min(16, (c + 2) // 2)) for c in cardinalities
        )
        width = n_in - self.n_cat + sum(e.embedding_dim for e in self.embeddings)
        blocks: list[nn.Module] = []
        for size in hidden_layer_sizes:
            # batch norm's shift makes the affine layer's bias redundant (as in the NumPy MLP)
            blocks.append(nn.Linear(width, size, bias=not batchnorm))
            if batchnorm:
                blocks.append(nn.BatchNorm1d(size))
            blocks += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, n_outputs)
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, d)
        if self.n_cat:
            codes = x[:, -self.n_cat :].long() + 1  # -1 (unseen) -> row 0 of each table
            embedded = [
                emb(codes[:, j].clamp(0, emb.num_embeddings - 1))
                for j, emb in enumerate(self.embeddings)
            ]
            x = torch.cat([x[:, : -self.n_cat], *embedded], dim=1)
        return self.head(self.body(x))  # (B, n_outputs) logits


def _norm(channels: int, on: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if on else nn.Identity()


class LeNet(nn.Module):
    """conv5x5 -> pool -> conv5x5 -> pool -> fc -> fc, with ReLU (and batch norm)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 256,
        dropout: float = 0.25,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        c, h, w = _image_shape(self.input_shape)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(c, c1, 5, padding=2, bias=not batchnorm),
            _norm(c1, batchnorm),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),  # (B, c1, H/2, W/2)
            nn.Conv2d(c1, c2, 5, padding=2, bias=not batchnorm),
            _norm(c2, batchnorm),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),  # (B, c2, H/4, W/4)
        )
        flat = c2 * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(_as_image(x, self.input_shape)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; the input added back through an identity or 1x1 projection."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, batchnorm: bool = True, residual: bool = True
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=not batchnorm)
        self.bn1 = _norm(c_out, batchnorm)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=not batchnorm)
        self.bn2 = _norm(c_out, batchnorm)
        self.residual = residual
        self.shortcut: nn.Module = nn.Identity()
        if residual and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=not batchnorm), _norm(c_out, batchnorm)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, c_out, H / stride, W / stride)
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    """A 3x3 stem, ``len(widths)`` stages of ``blocks`` basic blocks, global average pool.

    Each stage after the first halves the resolution in its first block (stride 2).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_outputs: int,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] | int = 2,
        dropout: float = 0.0,
        batchnorm: bool = True,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        c, _, _ = _image_shape(self.input_shape)
        widths = tuple(widths)
        depth = (blocks,) * len(widths) if isinstance(blocks, int) else tuple(blocks)
        if len(depth) != len(widths):
            raise ConfigError(f"blocks {depth} and widths {widths} differ in length")
        self.stem = nn.Sequential(
            nn.Conv2d(c, widths[0], 3, padding=1, bias=not batchnorm),
            _norm(widths[0], batchnorm),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        c_in = widths[0]
        for i, (width, n) in enumerate(zip(widths, depth, strict=True)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(BasicBlock(c_in, width, stride, batchnorm, residual))
                c_in = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_outputs)
        )
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(_as_image(x, self.input_shape))  # (B, w0, H, W)
        return self.head(self.stages(x))  # (B, n_outputs)


# the estimator behind kfw's design matrix


class _TorchTabular(TabularModel):
    """A torch estimator behind the design matrix, with the fold's validation part and callback.

    Parameters
    ----------
    estimator : TorchClassifier or TorchRegressor
    scaler : {"standard", "robust", "none"}
        Numbers median-imputed, then standardised (tabular nets) or left on their scale
        (``"none"``: pixels / 255).
    embed : bool
        Categorical columns as integer codes into embeddings (MLP only), else one-hot.
    """

    def __init__(
        self,
        estimator: Any = None,
        scaler: str = "standard",
        embed: bool = False,
        min_frequency: int | None = 3,
    ) -> None:
        self.estimator = estimator
        self.scaler = scaler
        self.embed = embed
        self.min_frequency = min_frequency

    def stops_early(self) -> bool:
        return self.estimator is not None and self.estimator.stops_early()

    def fixed_length(self, epochs: int) -> dict[str, Any]:
        """The wrapped network's ``fixed_length``, addressed through ``estimator__``."""
        return {f"estimator__{k}": v for k, v in self.estimator.fixed_length(epochs).items()}

    def fit(
        self, X: Any, y: Any, eval_set: tuple[Any, Any] | None = None, callback: Any = None
    ) -> _TorchTabular:
        """Fit the design matrix on ``X`` and the network on its output."""
        self._callback = callback
        try:
            return super().fit(X, y, eval_set=eval_set)  # type: ignore[return-value]
        finally:
            del self._callback  # not part of the fitted state

    def _fit_model(self, X: Any, y: np.ndarray, eval_set: tuple[Any, np.ndarray] | None) -> Any:
        cats = categorical_columns(X)
        embed = bool(self.embed and cats)
        matrix = design(
            X, one_hot=not embed, scale=self.scaler, min_frequency=self.min_frequency
        ).fit(X)
        net = clone(self.estimator)
        if embed:
            encoder = matrix.named_transformers_["cat"][-1]
            cards = tuple(len(c) for c in encoder.categories_)
            net.set_params(module_params={**(net.module_params or {}), "cardinalities": cards})
        kwargs: dict[str, Any] = {"callback": self._callback}
        if eval_set is not None:
            kwargs["eval_set"] = (matrix.transform(eval_set[0]), eval_set[1])
        net.fit(matrix.transform(X), y, **kwargs)
        self.matrix_ = matrix
        self.history_ = net.history_
        self.best_iteration_ = net.best_iteration_
        return net

    def _predict_raw(self, X: Any) -> np.ndarray:
        Xm = self.matrix_.transform(X)
        if self._is_classifier():
            return self.model_.predict_proba(Xm)
        return self.model_.predict(Xm)


class TorchTabularClassifier(ClassifierMixin, _TorchTabular):
    """A torch classifier in the fold loop."""


class TorchTabularRegressor(RegressorMixin, _TorchTabular):
    """A torch regressor in the fold loop."""


# registry factories: one flat parameter dict, split between net, design matrix and recipe

_NET_CLASSES = {"mlp": MLP, "cnn": LeNet, "resnet": ResNet}
_DESIGN_KEYS = ("scaler", "embed", "min_frequency")
# defaults per net: (design matrix, recipe); parameters given in the roster win
DEFAULTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # the scratch MLP's recipe: Adam, cosine from 1e-3 to 0, 30 epochs of 128 rows
    "mlp": (
        {"scaler": "standard", "embed": True},
        {
            "optimizer": "adamw",
            "lr": 1e-3,
            "schedule": "cosine",
            "warmup": 0.0,
            "weight_decay": 1e-4,
            "batch_size": 128,
            "epochs": 30,
            "patience": 10,
        },
    ),
    "cnn": (
        {"scaler": "none"},
        {
            "optimizer": "adamw",
            "lr": 2e-3,
            "schedule": "onecycle",
            "weight_decay": 5e-4,
            "batch_size": 128,
            "epochs": 15,
            "augment": True,
            "label_smoothing": 0.1,
        },
    ),
    "resnet": (
        {"scaler": "none"},
        {
            "optimizer": "adamw",
            "lr": 3e-3,
            "schedule": "onecycle",
            "weight_decay": 5e-4,
            "batch_size": 128,
            "epochs": 18,
            "augment": True,
            "label_smoothing": 0.1,
            "patience": 18,
        },
    ),
}


def _factory(net: str, classifier: bool) -> Any:
    def make(params: dict[str, Any], random_state: int = 0, n_jobs: int = 1) -> Any:
        from kfw.dl.device import resolve_device
        from kfw.dl.estimator import TorchClassifier, TorchRegressor

        est_cls = TorchClassifier if classifier else TorchRegressor
        net_keys = set(inspect.signature(_NET_CLASSES[net]).parameters) - {
            "input_shape",
            "n_outputs",
        }
        own = set(inspect.signature(est_cls.__init__).parameters) - {
            "self",
            "module",
            "module_params",
        }
        design_defaults, recipe_defaults = DEFAULTS[net]
        params = {**design_defaults, **recipe_defaults, **params}
        # embeddings feed the MLP only; the image nets see categories one-hot
        design_keys = set(_DESIGN_KEYS) if net == "mlp" else set(_DESIGN_KEYS) - {"embed"}
        unknown = sorted(set(params) - net_keys - own - design_keys)
        if unknown:
            takes = ", ".join(sorted(net_keys | own | design_keys))
            raise ConfigError(f"torch-{net} has no parameter {unknown[0]!r} (it takes: {takes})")
        resolve_device(params.get("device", "auto"))  # a missing GPU fails before any run
        module_params = {k: _plain(v) for k, v in params.items() if k in net_keys}
        recipe = {k: _plain(v) for k, v in params.items() if k in own}
        recipe = {"random_state": random_state, "n_jobs": n_jobs, **recipe}
        estimator = est_cls(module=net, module_params=module_params, **recipe)
        wrapper = TorchTabularClassifier if classifier else TorchTabularRegressor
        return wrapper(estimator, **{k: params[k] for k in design_keys if k in params})

    make.__name__ = f"make_torch_{net}_{'classifier' if classifier else 'regressor'}"
    return make


def _plain(value: Any) -> Any:
    # TOML arrays arrive as lists; shapes and widths are tuples
    return tuple(value) if isinstance(value, list) else value


torch_mlp_classifier = _factory("mlp", True)
torch_mlp_regressor = _factory("mlp", False)
torch_cnn_classifier = _factory("cnn", True)
torch_resnet_classifier = _factory("resnet", True)
