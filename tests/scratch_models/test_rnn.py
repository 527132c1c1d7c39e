"""The sequence layers: gradient checks, torch.nn.RNN / LSTM / cross_entropy as oracles, the demo.

Gradients are checked with central differences in float64 (see ``gradcheck``). torch's
recurrent layers have two bias vectors; ours has one, their sum, so both are drawn nonzero.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratch_models import rnn
from scratch_models.demos import char_lstm
from tests.scratch_models.gradcheck import (
    GRAD_TOL,
    is_well_conditioned,
    numerical_gradient,
    rel_error,
)
from tests.scratch_models.gradcheck import check_layer as check_gradients

ORACLE_TOL = 1e-10  # our forward vs torch's, float64
LOSS_TOL = 1e-12  # our temporal softmax loss vs torch's cross_entropy
DEMO_LOSS_DROP = 0.5  # the demo's held-out loss after training, as a fraction of the initial

N, T, D, H, V = 3, 4, 5, 6, 7

torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def t(x):
    return torch.from_numpy(np.asarray(x))


def rnn_params(rng, gates):
    """Wx (D, gates H), Wh (H, gates H), and torch's two biases (their sum is our b)."""
    wx, wh = rng.normal(size=(D, gates * H)) / np.sqrt(D), rng.normal(size=(H, gates * H))
    b_ih, b_hh = rng.normal(size=gates * H), rng.normal(size=gates * H)
    return wx, wh / np.sqrt(H), b_ih, b_hh


# --------------------------------------------------------------------------- embedding


def test_word_embedding_lookup_and_gradient(rng):
    x = rng.integers(0, V, size=(N, T))
    x[0, :2] = 3  # a repeated id: its gradient rows add up
    W = rng.normal(size=(V, D))
    out, _ = rnn.word_embedding_forward(x, W)
    np.testing.assert_array_equal(out, F.embedding(t(x), t(W)).numpy())
    errors = check_gradients(
        lambda W: rnn.word_embedding_forward(x, W), rnn.word_embedding_backward, [W]
    )
    assert max(errors) < GRAD_TOL
    dout = rng.normal(size=out.shape)
    dW = rnn.word_embedding_backward(dout, rnn.word_embedding_forward(x, W)[1])
    unused = np.setdiff1d(np.arange(V), x)
    np.testing.assert_array_equal(dW[unused], 0.0)


# --------------------------------------------------------------------------- vanilla RNN


def test_rnn_step_gradients(rng):
    wx, wh, b, _ = rnn_params(rng, 1)
    x, h = rng.normal(size=(N, D)), rng.normal(size=(N, H))
    errors = check_gradients(rnn.rnn_step_forward, rnn.rnn_step_backward, [x, h, wx, wh, b])
    assert len(errors) == 5 and max(errors) < GRAD_TOL


def test_rnn_sequence_gradients(rng):
    wx, wh, b, _ = rnn_params(rng, 1)
    x, h0 = rng.normal(size=(N, T, D)), rng.normal(size=(N, H))
    errors = check_gradients(rnn.rnn_forward, rnn.rnn_backward, [x, h0, wx, wh, b])
    assert len(errors) == 5 and max(errors) < GRAD_TOL


def test_rnn_step_and_sequence_equal_torch(rng):
    wx, wh, b_ih, b_hh = rnn_params(rng, 1)
    x, h0 = rng.normal(size=(N, T, D)), rng.normal(size=(N, H))  # a nonzero initial state
    layer = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
    layer.load_state_dict(
        {
            "weight_ih_l0": t(wx.T),
            "weight_hh_l0": t(wh.T),
            "bias_ih_l0": t(b_ih),
            "bias_hh_l0": t(b_hh),
        }
    )
    with torch.no_grad():
        expected, h_n = layer(t(x), t(h0)[None])
    h, _ = rnn.rnn_forward(x, h0, wx, wh, b_ih + b_hh)
    np.testing.assert_allclose(h, expected.numpy(), rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(h[:, -1], h_n[0].numpy(), rtol=0, atol=ORACLE_TOL)
    step, _ = rnn.rnn_step_forward(x[:, 0], h0, wx, wh, b_ih + b_hh)
    np.testing.assert_allclose(step, expected[:, 0].numpy(), rtol=0, atol=ORACLE_TOL)


# --------------------------------------------------------------------------- LSTM


def lstm_step_both(x, prev_h, prev_c, wx, wh, b):
    """One LSTM step with (next_h, next_c) side by side, so one check covers both outputs."""
    next_h, next_c, cache = rnn.lstm_step_forward(x, prev_h, prev_c, wx, wh, b)
    return np.concatenate([next_h, next_c], axis=1), cache  # (N, 2H)


def lstm_step_both_backward(dout, cache):
    return rnn.lstm_step_backward(dout[:, :H], dout[:, H:], cache)


def lstm_sequence_both(x, h0, wx, wh, b, c0):
    """Every h and the final c in one (N, T H + H) array."""
    h, c, cache = rnn.lstm_forward(x, h0, wx, wh, b, c0)
    return np.concatenate([h.reshape(len(x), -1), c], axis=1), cache


def lstm_sequence_both_backward(dout, cache):
    dh, dc = dout[:, : T * H].reshape(N, T, H), dout[:, T * H :]
    dx, dh0, dc0, dwx, dwh, db = rnn.lstm_backward(dh, cache, dc)
    return dx, dh0, dwx, dwh, db, dc0  # in the order of the inputs


def test_lstm_step_gradients(rng):
    wx, wh, b, _ = rnn_params(rng, 4)
    x, h, c = rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(N, H))
    errors = check_gradients(lstm_step_both, lstm_step_both_backward, [x, h, c, wx, wh, b])
    assert len(errors) == 6 and max(errors) < GRAD_TOL


def test_lstm_sequence_gradients_with_the_final_cell(rng):
    wx, wh, b, _ = rnn_params(rng, 4)
    x, h0, c0 = rng.normal(size=(N, T, D)), rng.normal(size=(N, H)), rng.normal(size=(N, H))
    errors = check_gradients(
        lstm_sequence_both, lstm_sequence_both_backward, [x, h0, wx, wh, b, c0]
    )
    assert len(errors) == 6 and max(errors) < GRAD_TOL


def test_lstm_step_and_sequence_equal_torch(rng):
    wx, wh, b_ih, b_hh = rnn_params(rng, 4)
    x = rng.normal(size=(N, T, D))
    h0, c0 = rng.normal(size=(N, H)), rng.normal(size=(N, H))  # nonzero initial states
    layer = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    layer.load_state_dict(
        {
            "weight_ih_l0": t(wx.T),
            "weight_hh_l0": t(wh.T),
            "bias_ih_l0": t(b_ih),
            "bias_hh_l0": t(b_hh),
        }
    )
    with torch.no_grad():
        expected, (h_n, c_n) = layer(t(x), (t(h0)[None], t(c0)[None]))
    b = b_ih + b_hh
    h, c, _ = rnn.lstm_forward(x, h0, wx, wh, b, c0)
    np.testing.assert_allclose(h, expected.numpy(), rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(h[:, -1], h_n[0].numpy(), rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(c, c_n[0].numpy(), rtol=0, atol=ORACLE_TOL)
    step_h, step_c, _ = rnn.lstm_step_forward(x[:, 0], h0, c0, wx, wh, b)
    with torch.no_grad():
        _, (h_1, c_1) = layer(t(x[:, :1]), (t(h0)[None], t(c0)[None]))
    np.testing.assert_allclose(step_h, h_1[0].numpy(), rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(step_c, c_1[0].numpy(), rtol=0, atol=ORACLE_TOL)
    # c0 = None is a zero cell, as torch's default
    with torch.no_grad():
        expected_zero, _ = layer(t(x), (t(h0)[None], torch.zeros(1, N, H, dtype=torch.float64)))
    h_zero, _, _ = rnn.lstm_forward(x, h0, wx, wh, b)
    np.testing.assert_allclose(h_zero, expected_zero.numpy(), rtol=0, atol=ORACLE_TOL)


# --------------------------------------------------------------------------- output and loss


def test_temporal_affine_gradients_and_values(rng):
    x, w, b = rng.normal(size=(N, T, D)), rng.normal(size=(D, V)), rng.normal(size=V)
    errors = check_gradients(rnn.temporal_affine_forward, rnn.temporal_affine_backward, [x, w, b])
    assert max(errors) < GRAD_TOL
    np.testing.assert_allclose(
        rnn.temporal_affine_forward(x, w, b)[0], F.linear(t(x), t(w.T), t(b)).numpy()
    )


@pytest.mark.parametrize("normalize", ["tokens", "batch"])
def test_temporal_softmax_loss_equals_torch_and_its_gradient(rng, normalize):
    x, y = rng.normal(size=(N, T, V)), rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.6
    mask[0, 0], mask[1, 1] = True, False
    loss, dx = rnn.temporal_softmax_loss(x, y, mask, normalize)
    # torch: the masked-out targets are ignored; "tokens" is its mean, "batch" its sum / N
    ignored = torch.where(t(mask), t(y), torch.tensor(-100))
    xt = t(x.reshape(N * T, V)).requires_grad_()
    if normalize == "tokens":
        expected = F.cross_entropy(xt, ignored.reshape(-1), ignore_index=-100)
    else:
        expected = F.cross_entropy(xt, ignored.reshape(-1), ignore_index=-100, reduction="sum") / N
    expected.backward()
    assert loss == pytest.approx(expected.item(), abs=LOSS_TOL)
    np.testing.assert_allclose(dx.reshape(N * T, V), xt.grad.numpy(), rtol=0, atol=LOSS_TOL)
    np.testing.assert_array_equal(dx[~mask], 0.0)
    assert is_well_conditioned([dx])
    numeric = numerical_gradient(lambda: rnn.temporal_softmax_loss(x, y, mask, normalize)[0], x)
    assert rel_error(dx, numeric) < GRAD_TOL
    # the two normalisations differ by the number of counted tokens per sequence
    other = rnn.temporal_softmax_loss(x, y, mask, "batch" if normalize == "tokens" else "tokens")
    ratio = loss / other[0]
    assert ratio == pytest.approx(mask.sum() / N if normalize == "batch" else N / mask.sum())


def test_temporal_softmax_loss_without_mask_and_bad_arguments(rng):
    x, y = rng.normal(size=(N, T, V)), rng.integers(0, V, size=(N, T))
    loss, _ = rnn.temporal_softmax_loss(x, y)
    assert loss == pytest.approx(F.cross_entropy(t(x.reshape(-1, V)), t(y.reshape(-1))).item())
    with pytest.raises(ValueError, match="no token"):
        rnn.temporal_softmax_loss(x, y, np.zeros((N, T), dtype=bool))
    with pytest.raises(ValueError, match="normalize"):
        rnn.temporal_softmax_loss(x, y, normalize="mean")


# --------------------------------------------------------------------------- the demo


def test_char_lstm_demo_learns_a_tiny_corpus_and_samples_its_vocabulary():
    text = "".join(np.random.default_rng(0).choice(["abc ", "hello ", "xyz. "], size=300))
    config = char_lstm.Config(hidden=16, embed=8, seq=12, batch=16, learning_rate=1e-2)
    config.eval_windows, config.eval_every = 32, 1e9
    model = char_lstm.train(text, config, max_iters=150)
    first, last = model.history[0], model.history[-1]
    assert last["iter"] == 150
    assert first["val"] == pytest.approx(np.log(len(model.chars)), rel=0.3)  # near uniform
    assert last["val"] < DEMO_LOSS_DROP * first["val"]
    assert last["train"] < DEMO_LOSS_DROP * first["train"]
    sampled = char_lstm.sample(model, 200, prompt="he", seed=1)
    assert len(sampled) == 200 and set(sampled) <= set(model.chars)
    assert sampled == char_lstm.sample(model, 200, prompt="he", seed=1)  # seeded
    with pytest.raises(ValueError, match="not in it"):
        char_lstm.sample(model, 5, prompt="Q")
    with pytest.raises(ValueError, match="too short"):
        char_lstm.train("abcdefgh" * 3, config, max_iters=1)
