"""Torch networks as scikit-learn estimators: one more model in kfw's fold loop.

:class:`TorchClassifier` and :class:`TorchRegressor` wrap a module factory (a registered net
name such as ``"resnet"``, a ``"package.module:Factory"`` path, or a callable) and a
training recipe. The factory is called as ``factory(input_shape=..., n_outputs=...,
**module_params)`` once ``fit`` knows the data's shape.

The recipe, per epoch: a fresh permutation of the rows (from a seeded ``torch.Generator``),
mini-batches indexed from tensors moved to the device once, optional batch augmentation
(:mod:`kfw.dl.augment`), the loss (cross-entropy with label smoothing, or mean squared error
on the standardised target), SGD with Nesterov momentum or AdamW (weight decay on weights,
not on biases and norms), a per-step learning-rate schedule (OneCycle, cosine with linear
warm-up, or constant). With the fold's validation part (``eval_set``, which kfw's fold loop
passes), each epoch ends with its loss and metric, and early stopping keeps the weights of
the best epoch. Every epoch is reported through ``callback.log`` and kept in ``history_``.

Images are ``channels_last`` (NHWC) on every device; on CUDA the forward pass runs under bf16
autocast, on the CPU everything is float32, deterministic under ``random_state`` (the same seed
and thread count give the same predictions), with ``n_jobs`` threads.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import time
from collections.abc import Callable, Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from kfw.dl.augment import TTA_SHIFTS, Augment, shift
from kfw.dl.checkpoint import load_state
from kfw.dl.device import resolve_device
from kfw.errors import ConfigError, KfwError
from kfw.progress import NULL, Callback
from kfw.threads import default_threads

# short names of the networks of models/torch_nets.py (imported on first use)
NETS = {
    "mlp": "models.torch_nets:MLP",
    "cnn": "models.torch_nets:LeNet",
    "resnet": "models.torch_nets:ResNet",
}
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "none")
PREDICT_BATCH = 1024


def net_factory(module: str | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """The callable behind a net name, a ``"package.module:Name"`` path, or a callable."""
    if callable(module):
        return module
    path = NETS.get(module, module)
    if not isinstance(path, str) or ":" not in path:
        raise ConfigError(f"unknown network {module!r} (registered: {', '.join(sorted(NETS))})")
    where, name = path.split(":")
    try:
        return getattr(importlib.import_module(where), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"network {module!r}: cannot import {path}") from None


@contextlib.contextmanager
def _cpu_settings(threads: int, deterministic: bool) -> Iterator[None]:
    """Thread count and deterministic kernels for the duration of a fit, then as they were."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def lr_factor(schedule: str, total: int, warmup: float) -> Callable[[int], float]:
    """The learning rate at step ``t`` (0-based) as a fraction of ``lr``.

    ``onecycle`` is the learning-rate curve of Smith & Topin's OneCycle (torch's
    ``OneCycleLR`` with its defaults, momentum not cycled): a cosine rise from ``lr / 25`` to
    ``lr`` over the warm-up steps, then a cosine fall to ``lr / 25e4``; written here so that
    runs of a few steps work too. ``cosine`` rises linearly over the warm-up, then falls to 0.
    """
    warm = round(warmup * total)

    def half_cosine(start: float, end: float, frac: float) -> float:
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))

    def onecycle(t: int) -> float:
        if t < warm:
            return half_cosine(1 / 25, 1.0, t / warm)
        return half_cosine(1.0, 1 / 25e4, (t - warm) / max(total - warm - 1, 1))

    def cosine(t: int) -> float:
        if t < warm:
            return (t + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (t - warm) / max(total - warm, 1)))

    return {"onecycle": onecycle, "cosine": cosine}.get(schedule, lambda t: 1.0)


class _TorchModel(BaseEstimator):
    """What the classifier and the regressor share; see :class:`TorchClassifier`."""

    def __init__(
        self,
        module: str | Callable[..., nn.Module] = "mlp",
        module_params: dict[str, Any] | None = None,
        input_shape: tuple[int, ...] | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        schedule: str = "onecycle",
        warmup: float = 0.2,
        label_smoothing: float = 0.0,
        batch_size: int = 128,
        epochs: int = 20,
        early_stopping: bool = True,
        patience: int = 5,
        augment: bool = False,
        shift: float = 0.1,
        rotate: float = 10.0,
        zoom: float = 0.1,
        cutout: int = 0,
        tta: int = 0,
        mixed_precision: bool = True,
        channels_last: bool = True,
        device: str = "auto",
        n_jobs: int | None = None,
        init_from: str | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.module = module
        self.module_params = module_params
        self.input_shape = input_shape
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup = warmup
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.patience = patience
        self.augment = augment
        self.shift = shift
        self.rotate = rotate
        self.zoom = zoom
        self.cutout = cutout
        self.tta = tta
        self.mixed_precision = mixed_precision
        self.channels_last = channels_last
        self.device = device
        self.n_jobs = n_jobs
        self.init_from = init_from
        self.random_state = random_state

    # early stopping, as kfw's fold loop asks (kfw.core.cv.stops_early)
    def stops_early(self) -> bool:
        """Whether an ``eval_set`` makes this network keep its best epoch."""
        return bool(self.early_stopping)

    def fixed_length(self, epochs: int) -> dict[str, Any]:
        """``set_params`` that train exactly ``epochs`` epochs, without early stopping."""
        return {"epochs": int(epochs), "early_stopping": False}

    # what a subclass defines
    _metric_name = ""

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError  # abstract: labels to 0..K-1, or the standardised target

    def _loss(self) -> nn.Module:
        raise NotImplementedError  # abstract

    def _evaluate(self, out: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        raise NotImplementedError  # abstract: (loss, metric) of validation outputs

    def _n_outputs(self) -> int:
        raise NotImplementedError  # abstract

    # parameters and data

    def _check_params(self) -> None:
        for name in ("batch_size", "epochs", "patience"):
            value = getattr(self, name)
            if not (isinstance(value, Integral) and value > 0):
                raise ValueError(f"{name} must be an int > 0, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (isinstance(self.warmup, Real) and 0 <= self.warmup < 1):
            raise ValueError(
                f"warmup must be a fraction of the steps in [0, 1), got {self.warmup!r}"
            )
        if not (isinstance(self.label_smoothing, Real) and 0 <= self.label_smoothing < 1):
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not (isinstance(self.tta, Integral) and 0 <= self.tta <= len(TTA_SHIFTS)):
            raise ValueError(f"tta must be an int in [0, {len(TTA_SHIFTS)}], got {self.tta!r}")

    def _image_shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(int(s) for s in self.input_shape)
        if math.prod(shape) != n_features:
            raise KfwError(
                f"images of the wrong size: input_shape {'x'.join(map(str, shape))} needs "
                f"{math.prod(shape)} values per row, the data have {n_features} columns"
            )
        return shape

    def _validate(self, X: Any, reset: bool, finite: bool = True) -> np.ndarray:
        return validate_data(
            self, X, reset=reset, dtype=[np.float32, np.float64], ensure_all_finite=finite
        )

    def _to_tensor(self, X: np.ndarray, dev: torch.device) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(X, dtype=np.float32)).to(dev)
        x = x.view(len(x), *self.input_shape_)  # (n, C, H, W) for images, (n, d) for rows
        if self._channels_last(dev):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _channels_last(self, dev: torch.device) -> bool:
        # images only; on the CPU too, where oneDNN's NHWC convolutions train ~25% faster
        return bool(self.channels_last) and len(self.input_shape_) == 3

    def _autocast(self, dev: torch.device) -> Any:
        on = bool(self.mixed_precision) and dev.type == "cuda"
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=on)

    # training

    def fit(
        self,
        X: Any,
        y: Any,
        eval_set: tuple[Any, Any] | None = None,
        callback: Callback | None = None,
    ) -> _TorchModel:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric rows; reshaped to ``input_shape`` when it is set.
        y : array-like of shape (n_samples,)
        eval_set : (X_valid, y_valid), optional
            The fold's validation part: measured after each epoch; with ``early_stopping``
            training stops after ``patience`` epochs without a lower validation loss and the
            best epoch's weights are kept.
        callback : kfw.progress.Callback, optional
            Receives ``log(metrics, step=epoch)`` after every epoch.
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64], y_numeric=False)
        y = self._encode_target(np.asarray(y))
        if len(X) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 rows to train (batch norm), got 1 sample"
            )
        self.input_shape_ = self._image_shape(X.shape[1])
        valid = None
        if eval_set is not None:
            Xv = self._validate(eval_set[0], reset=False)
            valid = (Xv, self._encode_valid(np.asarray(eval_set[1])))
        dev = resolve_device(self.device)
        threads = self.n_jobs if self.n_jobs and self.n_jobs > 0 else default_threads()
        seed = 0 if self.random_state is None else int(self.random_state)
        forked = [dev.index or 0] if dev.type == "cuda" else []
        # fork_rng: the seed governs this fit only, the caller's global RNG is left as it was
        with torch.random.fork_rng(devices=forked), _cpu_settings(threads, dev.type == "cpu"):
            torch.manual_seed(seed)
            self._train(X, y, valid, dev, seed, callback or NULL)
        return self

    def _encode_valid(self, y: np.ndarray) -> np.ndarray:
        return self._encode_target(y)

    def _parameter_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        # weight decay on weight matrices and kernels only: biases and norm scales stay free;
        # a network with lr_groups() (kfw.dl.transfer) sets a learning rate per layer group
        scaled = (
            module.lr_groups() if hasattr(module, "lr_groups") else [(module.parameters(), 1.0)]
        )
        groups = []
        for params, scale in scaled:
            params = [p for p in params if p.requires_grad]
            lr = self.lr * scale
            groups += [
                {
                    "params": [p for p in params if p.ndim > 1],
                    "weight_decay": self.weight_decay,
                    "lr": lr,
                },
                {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr},
            ]
        return groups

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        groups = self._parameter_groups(module)
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=True)
        return torch.optim.AdamW(groups, lr=self.lr)

    def _scheduler(self, opt: torch.optim.Optimizer, total: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(self.schedule, total, self.warmup))

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        valid: tuple[np.ndarray, np.ndarray] | None,
        dev: torch.device,
        seed: int,
        callback: Callback,
    ) -> None:
        Xt, yt = self._to_tensor(X, dev), torch.as_tensor(y).to(dev)  # moved once
        Xv = yv = None
        if valid is not None:
            Xv, yv = self._to_tensor(valid[0], dev), torch.as_tensor(valid[1]).to(dev)
        module = net_factory(self.module)(
            input_shape=self.input_shape_,
            n_outputs=self._n_outputs(),
            **dict(self.module_params or {}),
        )
        if self.init_from:
            load_state(module, self.init_from)
        module = module.to(dev)
        if self._channels_last(dev):
            module = module.to(memory_format=torch.channels_last)
        n = len(Xt)
        batch = min(self.batch_size, n)
        # a last batch of one row would break batch norm: it is left out of that epoch
        steps = n // batch + (1 if n % batch > 1 else 0)
        opt = self._optimizer(module)
        sched = self._scheduler(opt, steps * self.epochs)
        loss_fn = self._loss()
        order_gen = torch.Generator().manual_seed(seed)  # shuffles: on the CPU, device-independent
        aug_gen = torch.Generator(device=dev).manual_seed(seed + 1)
        augment = (
            Augment(self.shift, self.rotate, self.zoom, self.cutout)
            if self.augment and len(self.input_shape_) == 3
            else None
        )
        self.history_: list[dict[str, float]] = []
        best_loss, best_state, best_epoch, waited = math.inf, None, None, 0
        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            module.train()
            order = torch.randperm(n, generator=order_gen).to(dev)
            total = torch.zeros((), device=dev)
            seen = 0
            for step in range(steps):
                rows = order[step * batch : (step + 1) * batch]
                xb, yb = Xt[rows], yt[rows]
                if augment is not None:
                    xb = augment(xb, aug_gen)
                with self._autocast(dev):
                    out = module(xb)
                loss = loss_fn(out.float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.detach() * len(rows)  # summed on the device: no sync per step
                seen += len(rows)
            record = {"epoch": epoch, "train_loss": float(total) / seen}
            if Xv is not None:
                v_loss, v_metric = self._evaluate(self._outputs(module, Xv, dev), yv)
                record.update(valid_loss=v_loss, **{f"valid_{self._metric_name}": v_metric})
                if v_loss < best_loss:
                    best_loss, best_epoch, waited = v_loss, epoch, 0
                    if self.early_stopping:
                        best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    waited += 1
            record.update(
                lr=float(opt.param_groups[0]["lr"]), seconds=time.perf_counter() - started
            )
            self.history_.append(record)
            callback.log(dict(record), step=epoch)
            if Xv is not None and self.early_stopping and waited >= self.patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        self.module_ = module.eval()
        self.n_iter_ = len(self.history_)
        # the epoch kept, when early stopping chose it on the validation part (kfw records it)
        self.best_iteration_ = best_epoch if (Xv is not None and self.early_stopping) else None

    # prediction

    def _outputs(self, module: nn.Module, X: torch.Tensor, dev: torch.device) -> torch.Tensor:
        """Network outputs (n, n_outputs) in float32, batch by batch, in predict mode."""
        module.eval()
        parts = []
        with torch.inference_mode(), self._autocast(dev):
            for start in range(0, len(X), PREDICT_BATCH):
                parts.append(module(X[start : start + PREDICT_BATCH]).float())
        return torch.cat(parts)

    def _predict_outputs(self, X: Any) -> np.ndarray:
        """Outputs averaged over the test-time shifted copies: probabilities or values."""
        check_is_fitted(self)
        # the NaN / infinity scan runs on the device, after the copy: on a GPU the CPU scan of
        # sklearn's validation was a third of the whole prediction's time (digits_epoch.py)
        X = self._validate(X, reset=False, finite=False)
        dev = resolve_device(self.device)
        threads = self.n_jobs if self.n_jobs and self.n_jobs > 0 else default_threads()
        with _cpu_settings(threads, False):
            if next(self.module_.parameters()).device != dev:
                self.module_.to(dev)
            x = self._to_tensor(X, dev)
            # a finite sum means finite values (sklearn's first pass); else look element-wise
            if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
                raise ValueError("Input X contains NaN or infinity.")
            out = self._link(self._outputs(self.module_, x, dev))
            if self.tta and len(self.input_shape_) == 3:
                for dy, dx in TTA_SHIFTS[: self.tta]:
                    out += self._link(self._outputs(self.module_, shift(x, dy, dx), dev))
                out /= self.tta + 1
            return out.double().cpu().numpy()

    def _link(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def __getstate__(self) -> dict[str, Any]:
        # pickles carry the network on the CPU, loadable on a machine without a GPU
        state = dict(self.__dict__)
        if "module_" in state:
            state["module_"] = copy.deepcopy(self.module_).cpu()
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class TorchClassifier(ClassifierMixin, _TorchModel):
    """A torch network trained as a classifier (cross-entropy with label smoothing).

    Parameters
    ----------
    module : str or callable, default="mlp"
        A net of :data:`NETS` (``"mlp"``, ``"cnn"``, ``"resnet"``), a ``"package.module:Name"``
        path, or a callable ``(input_shape=, n_outputs=, **module_params) -> nn.Module``.
    module_params : dict, optional
        Keyword arguments of the network (widths, ``batchnorm``, ``residual`` ...).
    input_shape : tuple of int, optional
        Each row reshaped to this, e.g. ``(1, 28, 28)``; None keeps rows flat.
    optimizer : {"adamw", "sgd"}
        AdamW, or SGD with Nesterov momentum ``momentum``.
    lr : float
        Peak learning rate.
    weight_decay : float
        Decoupled (AdamW) or L2 (SGD) decay of weight matrices and kernels.
    schedule : {"onecycle", "cosine", "none"}
        Per step: OneCycle's learning-rate curve (up from ``lr / 25`` over the ``warmup``
        fraction of steps, then cosine annealing), cosine with a linear warm-up over the
        ``warmup`` fraction, or constant.
    label_smoothing : float
    batch_size, epochs : int
    early_stopping : bool
        With an ``eval_set``: stop after ``patience`` epochs without a lower validation loss
        and keep the best epoch's weights.
    augment : bool
        Random shifts (``shift``, fraction of the size), rotations (``rotate``, degrees),
        zooms (``zoom``) and ``cutout`` squares of training images (see :mod:`kfw.dl.augment`).
    tta : int
        Test-time augmentation: probabilities averaged over the image and ``tta`` copies
        shifted by one pixel.
    mixed_precision : bool
        bf16 autocast, on CUDA only.
    channels_last : bool
        Channels-last (NHWC) images and convolution weights, on every device.
    device : str
        ``"auto"`` (CUDA if present, else CPU), ``"cpu"`` or ``"cuda"``.
    n_jobs : int, optional
        CPU threads (default: every core this process may use).
    init_from : str, optional
        A checkpoint (:func:`kfw.dl.checkpoint.save_state`) the network starts from.
    random_state : int
        Seeds weights, shuffling, dropout and augmentation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    module_ : torch.nn.Module
        The trained network, in eval mode.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, with an ``eval_set`` ``valid_loss`` and
        ``valid_accuracy``, ``lr`` (at the epoch's end) and ``seconds``.
    best_iteration_ : int or None
        The epoch whose weights were kept by early stopping.
    n_iter_ : int
        Epochs run.
    input_shape_ : tuple of int
    """

    _metric_name = "accuracy"

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has only 1 class ({self.classes_[0]!r}); a classifier needs at least 2"
            )
        return codes.astype(np.int64)

    def _encode_valid(self, y: np.ndarray) -> np.ndarray:
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[codes], y):
            raise ValueError("eval_set has classes the training rows lack")
        return codes.astype(np.int64)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _loss(self) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=float(self.label_smoothing))

    def _evaluate(self, out: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        loss = F.cross_entropy(out, y)  # plain log-loss: smoothing is a training device
        return float(loss), float((out.argmax(1) == y).float().mean())

    def _link(self, out: torch.Tensor) -> torch.Tensor:
        return torch.softmax(out, dim=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes), columns as ``classes_``."""
        return self._predict_outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class TorchRegressor(RegressorMixin, _TorchModel):
    """A torch network trained on the standardised target by mean squared error.

    Parameters are those of :class:`TorchClassifier` (``label_smoothing`` is ignored);
    the validation metric is the RMSE on the target's own scale.

    Attributes
    ----------
    y_mean_, y_scale_ : float
        The target's mean and standard deviation in training (predictions are mapped back).
    module_, history_, best_iteration_, n_iter_, input_shape_
        As for :class:`TorchClassifier`.
    """

    _metric_name = "rmse"

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        y = y.astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        return ((y - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _encode_valid(self, y: np.ndarray) -> np.ndarray:
        return ((y.astype(np.float64) - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _n_outputs(self) -> int:
        return 1

    def _loss(self) -> nn.Module:
        return _SquaredError()

    def _evaluate(self, out: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        mse = float(F.mse_loss(out.view(-1), y))
        return mse, math.sqrt(mse) * self.y_scale_

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, (n_samples,)."""
        return self._predict_outputs(X).ravel() * self.y_scale_ + self.y_mean_


class _SquaredError(nn.Module):
    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.view(-1), y)  # out (B, 1), y (B,)
