"""kfw.dl.estimator: torch networks behind the scikit-learn contract, in kfw's fold loop."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from kfw.core.cv import FoldStore, cross_validate
from kfw.core.folds import Folds, FoldScheme, assign_folds
from kfw.core.metrics import get_metric
from kfw.core.runstore import PartialFolds
from kfw.dl.checkpoint import load_state, save_state
from kfw.dl.estimator import TorchClassifier, TorchRegressor, lr_factor, net_factory
from kfw.errors import ConfigError, KfwError
from kfw.progress import Callback

torch.set_num_threads(1)
MIN_ACCURACY = 0.85  # small MLP / CNN, a few epochs on 8x8 digits (chance: 0.1)
MIN_R = 0.9  # correlation of a small regressor's predictions with a linear target
PARITY_ATOL = 1e-6  # TorchClassifier against the plain loop it stands for (same seed)
SMALL = dict(
    module_params={"hidden_layer_sizes": (32,)}, epochs=8, batch_size=32, lr=0.01, n_jobs=1
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def test_learns_digits_and_is_deterministic_under_a_seed(digits):
    X, y = digits
    model = TorchClassifier(**SMALL, random_state=3)
    proba = model.fit(X[:1000], y[:1000]).predict_proba(X[1000:])
    assert proba.shape == (len(X) - 1000, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.mean(model.predict(X[1000:]) == y[1000:]) > MIN_ACCURACY
    again = clone(model).fit(X[:1000], y[:1000]).predict_proba(X[1000:])
    np.testing.assert_array_equal(again, proba)  # same seed, same predictions
    other = clone(model).set_params(random_state=4).fit(X[:1000], y[:1000])
    assert not np.array_equal(other.predict_proba(X[1000:]), proba)
    # the caller's global RNG is left as it was (fork_rng)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    clone(model).fit(X[:200], y[:200])
    torch.testing.assert_close(torch.rand(3), expected)


def _plain_loop(X, y, seed, epochs, batch, lr):
    """The same training written directly with torch: what TorchClassifier must reproduce."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = net_factory("mlp")(input_shape=(X.shape[1],), n_outputs=10, hidden_layer_sizes=(32,))
        decay = [p for p in net.parameters() if p.ndim > 1]
        rest = [p for p in net.parameters() if p.ndim <= 1]
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}],
            lr=lr,
            momentum=0.9,
            nesterov=True,
        )
        Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            net.train()
            order = torch.randperm(len(Xt), generator=gen)
            for start in range(0, len(Xt), batch):
                rows = order[start : start + batch]
                loss = torch.nn.functional.cross_entropy(net(Xt[rows]), yt[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            return torch.softmax(net(Xt), dim=1).numpy()


def test_matches_a_plain_torch_loop(digits):
    X, y = digits[0][:640], digits[1][:640]  # 640 = 20 batches of 32: no short last batch
    model = TorchClassifier(
        **{**SMALL, "epochs": 3, "lr": 0.05}, optimizer="sgd", schedule="none", random_state=11
    )
    model.set_params(module_params={"hidden_layer_sizes": (32,), "dropout": 0.2})
    ours = model.fit(X, y).predict_proba(X)
    plain = _plain_loop(X, y, seed=11, epochs=3, batch=32, lr=0.05)
    np.testing.assert_allclose(ours, plain, atol=PARITY_ATOL)


class Logs(Callback):
    def __init__(self) -> None:
        self.logs: list[tuple[dict, int | None]] = []

    def log(self, metrics, step=None):
        self.logs.append((metrics, step))


def test_early_stopping_keeps_the_best_epoch_and_reports_every_epoch(digits):
    X, y = digits
    logs = Logs()
    model = TorchClassifier(**{**SMALL, "epochs": 40, "lr": 0.05}, patience=3, random_state=0)
    model.fit(X[:800], y[:800], eval_set=(X[800:1200], y[800:1200]), callback=logs)
    history = model.history_
    assert model.n_iter_ == len(history) == len(logs.logs)
    assert [step for _, step in logs.logs] == list(range(1, len(history) + 1))
    assert {"train_loss", "valid_loss", "valid_accuracy", "lr", "seconds"} <= set(history[0])
    losses = [h["valid_loss"] for h in history]
    best = int(np.argmin(losses)) + 1
    assert model.best_iteration_ == best
    # stopped after `patience` epochs without a better validation loss
    assert len(history) == min(40, best + 3)
    # the weights kept are the best epoch's: their validation loss is the minimum
    proba = model.predict_proba(X[800:1200])
    loss = -np.mean(np.log(proba[np.arange(400), y[800:1200]]))
    assert loss == pytest.approx(min(losses), rel=1e-4)
    # without an eval set nothing is stopped or chosen
    plain = TorchClassifier(**SMALL).fit(X[:300], y[:300])
    assert plain.best_iteration_ is None and plain.n_iter_ == SMALL["epochs"]
    assert "valid_loss" not in plain.history_[0]


@pytest.mark.parametrize(
    ("optimizer", "schedule"), [("sgd", "onecycle"), ("adamw", "cosine"), ("adamw", "none")]
)
def test_each_optimiser_and_schedule_learns(digits, optimizer, schedule):
    X, y = digits
    lr = 0.05 if optimizer == "sgd" else 0.01
    model = TorchClassifier(
        **{**SMALL, "lr": lr}, optimizer=optimizer, schedule=schedule, label_smoothing=0.1
    )
    model.fit(X[:1000], y[:1000])
    assert np.mean(model.predict(X[1000:]) == y[1000:]) > MIN_ACCURACY
    final = model.history_[-1]["lr"]
    if schedule == "none":
        assert final == pytest.approx(lr)
    else:  # annealed to (almost) nothing by the last step
        assert final < 0.01 * lr


def test_cosine_schedule_warms_up_linearly_then_anneals():
    f = lr_factor("cosine", total=100, warmup=0.1)
    assert [f(t) for t in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(99) < 0.001
    assert lr_factor("none", 100, 0.1)(50) == 1.0
    one = lr_factor("onecycle", total=100, warmup=0.2)
    assert one(0) == pytest.approx(1 / 25) and one(20) == pytest.approx(1.0)
    assert one(10) == pytest.approx((1 + 1 / 25) / 2) and one(99) == pytest.approx(1 / 25e4)
    # a run of a few steps still has a schedule (torch's OneCycleLR divides by zero there)
    short = lr_factor("onecycle", total=4, warmup=0.2)
    assert [short(t) for t in range(4)] == pytest.approx([1 / 25, 1.0, 0.5, 1 / 25e4], abs=1e-5)


def test_images_augmentation_and_tta(digits):
    X, y = digits
    cnn = dict(
        module="cnn",
        module_params={"channels": (8, 16), "hidden": 32},
        input_shape=(1, 8, 8),
        epochs=8,
        batch_size=32,
        lr=3e-3,
        n_jobs=1,
    )
    model = TorchClassifier(**cnn, augment=True, shift=0.1, rotate=8, zoom=0.05).fit(
        X[:1000], y[:1000]
    )
    assert model.input_shape_ == (1, 8, 8)
    assert np.mean(model.predict(X[1000:]) == y[1000:]) > MIN_ACCURACY
    with_tta = clone(model).set_params(tta=4)
    with_tta.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    p0, p4 = model.predict_proba(X[1000:]), with_tta.predict_proba(X[1000:])
    np.testing.assert_allclose(p4.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(p0, p4)
    # augmentation changes training: the same seed without it gives another model
    unaugmented = TorchClassifier(**cnn).fit(X[:1000], y[:1000])
    assert not np.allclose(unaugmented.predict_proba(X[1000:]), p0)


def test_regressor_learns_and_maps_back_to_the_target_scale():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5)).astype(np.float32)
    y = 1000 + 300 * (X[:, 0] - 0.5 * X[:, 1]) + 10 * rng.normal(size=600)
    model = TorchRegressor(**{**SMALL, "epochs": 20, "lr": 3e-3}, random_state=0)
    model.fit(X[:400], y[:400], eval_set=(X[400:], y[400:]))
    pred = model.predict(X[400:])
    assert pred.shape == (200,)
    assert np.corrcoef(pred, y[400:])[0, 1] > MIN_R
    assert abs(pred.mean() - y[400:].mean()) < 0.2 * y[400:].std()
    rmse = np.sqrt(np.mean((pred - y[400:]) ** 2))
    best = model.history_[model.best_iteration_ - 1]["valid_rmse"]
    assert rmse == pytest.approx(best, rel=1e-3)  # reported on the target's own scale


def test_pickles_on_the_cpu_and_predicts_the_same(digits):
    X, y = digits
    model = TorchClassifier(**SMALL).fit(X[:300], y[:300])
    restored = pickle.loads(pickle.dumps(model))
    assert next(restored.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(
        restored.predict_proba(X[300:400]), model.predict_proba(X[300:400])
    )
    assert restored.history_ == model.history_


def test_checkpoints_load_into_the_same_network_only(tmp_path, digits):
    X, y = digits
    model = TorchClassifier(**SMALL).fit(X[:300], y[:300])
    path = tmp_path / "mlp.pt"
    save_state(model.module_, path)
    assert [p.name for p in tmp_path.iterdir()] == ["mlp.pt"]  # no temporary file left
    # a fresh network of the same architecture takes the weights exactly
    twin = net_factory("mlp")(input_shape=(64,), n_outputs=10, hidden_layer_sizes=(32,))
    load_state(twin, path)
    for (k, a), b in zip(
        twin.state_dict().items(), model.module_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)
    # init_from starts training from it
    warm = TorchClassifier(**SMALL, init_from=str(path)).fit(X[:300], y[:300])
    assert warm.history_[0]["train_loss"] < 0.5 * model.history_[0]["train_loss"]
    # another architecture: one clear line naming the file
    other = TorchClassifier(**{**SMALL, "module_params": {"hidden_layer_sizes": (16, 16)}})
    with pytest.raises(KfwError, match=r"mlp\.pt: checkpoint is of another architecture") as exc:
        other.set_params(init_from=str(path)).fit(X[:300], y[:300])
    assert "\n" not in str(exc.value) and "resized" in str(exc.value)
    with pytest.raises(KfwError, match="checkpoint not found"):
        clone(other).set_params(init_from=str(tmp_path / "none.pt")).fit(X[:300], y[:300])


def test_bad_input_is_refused_in_one_line(digits, monkeypatch):
    X, y = digits
    with pytest.raises(KfwError, match="images of the wrong size: input_shape 1x28x28 needs 784"):
        TorchClassifier(**SMALL, input_shape=(1, 28, 28)).fit(X[:100], y[:100])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device 'cuda' requested but .* no CUDA GPU"):
        TorchClassifier(**SMALL, device="cuda").fit(X[:100], y[:100])
    with pytest.raises(ConfigError, match="not a torch device"):
        TorchClassifier(**SMALL, device="gpu0").fit(X[:100], y[:100])
    with pytest.raises(ConfigError, match="unknown network 'vgg'"):
        TorchClassifier(module="vgg").fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TorchClassifier(optimizer="adam").fit(X[:100], y[:100])


def test_predict_refuses_nan_and_infinity_but_not_large_finite_values(digits):
    X, y = digits
    clf = TorchClassifier(**SMALL).fit(X[:100], y[:100])
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X[:20].astype(np.float32)  # copies
        Xb[7, 3] = bad
        with pytest.raises(ValueError, match="Input X contains NaN or infinity"):
            clf.predict_proba(Xb)
    # values whose float32 sum overflows are still finite (the element-wise second look)
    huge = np.full((20, X.shape[1]), 3e37, dtype=np.float32)
    assert np.isfinite(clf.predict_proba(huge)).all()


class _Recording(FoldStore):
    """A real checkpoint store that also counts the folds it saved."""

    def __init__(self, inner: PartialFolds) -> None:
        self.inner, self.saved = inner, 0

    def load(self, split):
        return self.inner.load(split)

    def save(self, *args):
        self.saved += 1
        self.inner.save(*args)
        if self.saved == 2:
            raise KeyboardInterrupt  # interrupted after two finished folds


def test_in_the_fold_loop_with_callback_early_stopping_and_resume(digits, tmp_path):
    X, y = digits
    X, y = pd.DataFrame(X[:400]), y[:400]
    scheme = FoldScheme("stratified", n_splits=4, seed=0)
    assignment, _ = assign_folds(scheme, len(y), y, task="multiclass")
    folds = Folds(scheme, np.arange(len(y)), assignment, None, "h")
    logs = Logs()
    model = TorchClassifier(**SMALL)
    kwargs = dict(metric=get_metric("accuracy"), task="multiclass", X_test=X.iloc[:50])
    full = cross_validate(model, X, y, folds, callback=logs, **kwargs)
    # each epoch chosen on an inner split (its epochs logged with a validation score), then
    # refitted on the whole training part for that many epochs (logged without one)
    assert full.early_stopping == "inner" and all(f.best_iteration and f.refit for f in full.folds)
    watched = sum(1 for m, _ in logs.logs if "valid_accuracy" in m)
    assert watched > 0 and len(logs.logs) == watched + sum(f.best_iteration for f in full.folds)
    assert all(len(f.history) >= f.best_iteration for f in full.folds)
    assert full.score > MIN_ACCURACY - 0.1  # 300 training rows a fold
    # interrupted after two folds, resumed: the same OOF as the uninterrupted run
    store = PartialFolds(tmp_path / "partial")
    with pytest.raises(KeyboardInterrupt):
        cross_validate(model, X, y, folds, store=_Recording(store), **kwargs)
    resumed = cross_validate(model, X, y, folds, store=store, **kwargs)
    assert [f.restored for f in resumed.folds] == [True, True, False, False]
    np.testing.assert_array_equal(resumed.oof, full.oof)
    np.testing.assert_array_equal(resumed.test, full.test)
