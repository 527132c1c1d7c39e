"""Reverse-mode automatic differentiation: a scalar ``Value`` (micrograd) and a NumPy ``Tensor``.

Every operation records its inputs and a local backward rule. For a scalar output L,
``L.backward()`` visits the graph in reverse topological order and applies the chain rule

    dL/dx = sum over the uses y = f(x, ...) of x:   (dL/dy) * (df/dx)

so a node used twice collects both contributions before its own rule runs. The local
rules of the Tensor ops, with ``g = dL/dout``:

* ``a + b``, ``a - b``: ``g``, ``+-g``; ``a * b``: ``g b``, ``g a``; ``a / b``: ``g / b``,
  ``-g a / b^2``; ``a ** p``: ``g p a^(p-1)`` (and ``g a^p log a`` for a Tensor ``p``).
* ``exp``: ``g e^a``; ``log``: ``g / a``; ``tanh``: ``g (1 - tanh^2)``; ``relu``: ``g [a > 0]``;
  ``sigmoid``: ``g s (1 - s)``; ``gelu``, the tanh approximation
  ``0.5 a (1 + tanh(c (a + 0.044715 a^3)))`` with ``c = sqrt(2 / pi)`` (torch's
  ``gelu(approximate="tanh")``): its derivative by the product rule.
* ``A @ B``: ``g B^T``, ``A^T g``; ``sum``: ``g`` copied back over the summed axes;
  ``reshape`` / ``transpose``: ``g`` reshaped / transposed back; ``a[idx]``: ``g``
  scattered with ``np.add.at`` (a repeated index receives every copy).
* ``log_softmax(a) = a - m - log sum exp(a - m)`` with ``m = max a`` (no overflow):
  ``g - softmax(a) * sum(g)``.

Broadcasting: an operand stretched to the output's shape receives the gradient summed
over the stretched axes, back to its own shape. Leaf gradients accumulate across
``backward()`` calls until ``zero_grad()`` (as torch's ``.grad``); the gradients of
intermediate nodes are recomputed by each call.

Reference: A. Karpathy, micrograd (2020), https://github.com/karpathy/micrograd;
Baydin et al., "Automatic differentiation in machine learning: a survey", JMLR 18, 2018.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Integral, Number
from typing import Any

import numpy as np

GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715


def _topological_order(root: Any) -> list[Any]:
    """Nodes reachable from root, each after all of its parents (iterative DFS, no recursion)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((parent, False) for parent in node._parents if parent not in seen)
    return order


class Value:
    """A scalar that records the operations applied to it, as in micrograd.

    Parameters
    ----------
    data : float
        The value.

    Attributes
    ----------
    data : float
    grad : float
        dL/d(this value) after ``L.backward()``; starts at 0.
    """

    def __init__(self, data: float, _parents: tuple[Value, ...] = (), _op: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None
        self._parents = _parents
        self._op = _op

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Value:
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def _unary(self, value: float, derivative: float, op: str) -> Value:
        out = Value(value, (self,), op)

        def _backward():
            self.grad += derivative * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        e = math.exp(self.data)
        return self._unary(e, e, "exp")

    def log(self) -> Value:
        return self._unary(math.log(self.data), 1.0 / self.data, "log")

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return self._unary(t, 1.0 - t * t, "tanh")

    def relu(self) -> Value:
        return self._unary(max(self.data, 0.0), float(self.data > 0), "relu")

    def sigmoid(self) -> Value:
        x = self.data  # 1 / (1 + e^-x), written so that e^(...) never overflows
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        return self._unary(s, s * (1.0 - s), "sigmoid")

    def backward(self) -> None:
        """Fill ``grad`` of every node this value depends on with d(self)/d(node)."""
        order = _topological_order(self)
        for node in order:
            if node._parents:
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(order):
            node._backward()

    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rsub__(self, other: float) -> Value:
        return other + (-self)

    def __rtruediv__(self, other: float) -> Value:
        return other * self**-1

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum grad over the axes that broadcasting prepended or stretched, back to ``shape``."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def _axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes (all of them for None)."""
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, Integral) else axis
    return tuple(sorted(a % ndim for a in axis))


class Tensor:
    """A NumPy array that records the operations applied to it.

    Parameters
    ----------
    data : array-like
        The values; copied. A float array keeps its dtype, anything else becomes float64.
    dtype : numpy dtype, optional
        Force this dtype.

    Attributes
    ----------
    data : ndarray
    grad : ndarray
        dL/d(data) after ``L.backward()``, same shape and dtype as ``data``; starts at zeros.
    """

    __array_ufunc__ = None  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(
        self,
        data: Any,
        dtype: Any = None,
        _parents: tuple[Tensor, ...] = (),
        _op: str = "",
    ):
        data = np.array(data, dtype=dtype)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float64)
        self.data = data
        self.grad = np.zeros_like(data)
        self._backward: Callable[[], None] = lambda: None
        self._parents = _parents
        self._op = _op

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def item(self) -> float:
        return self.data.item()

    def _lift(self, other: Any) -> Tensor:
        """A constant operand as a Tensor; plain numbers take this tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        return Tensor(other, dtype=self.data.dtype if isinstance(other, Number) else None)

    def _child(self, data: np.ndarray, parents: tuple[Tensor, ...], op: str) -> Tensor:
        return Tensor(data, dtype=data.dtype, _parents=parents, _op=op)

    # elementwise binary ops, with broadcasting

    def __add__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._child(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += _unbroadcast(out.grad, self.shape)
            other.grad += _unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __sub__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._child(self.data - other.data, (self, other), "-")

        def _backward():
            self.grad += _unbroadcast(out.grad, self.shape)
            other.grad -= _unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __mul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._child(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += _unbroadcast(out.grad * other.data, self.shape)
            other.grad += _unbroadcast(out.grad * self.data, other.shape)

        out._backward = _backward
        return out

    def __truediv__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._child(self.data / other.data, (self, other), "/")

        def _backward():
            self.grad += _unbroadcast(out.grad / other.data, self.shape)
            other.grad -= _unbroadcast(out.grad * out.data / other.data, other.shape)

        out._backward = _backward
        return out

    def __pow__(self, exponent: Any) -> Tensor:
        exponent = self._lift(exponent)
        out = self._child(self.data**exponent.data, (self, exponent), "**")

        def _backward():
            p = exponent.data
            self.grad += _unbroadcast(out.grad * p * self.data ** (p - 1), self.shape)
            with np.errstate(divide="ignore", invalid="ignore"):  # a^p log a, taken as 0 for a <= 0
                local = np.where(self.data > 0, out.data * np.log(self.data), 0.0)
            exponent.grad += _unbroadcast(out.grad * local, exponent.shape)

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        return self * -1.0

    def __radd__(self, other: Any) -> Tensor:
        return self._lift(other) + self

    def __rsub__(self, other: Any) -> Tensor:
        return self._lift(other) - self

    def __rmul__(self, other: Any) -> Tensor:
        return self._lift(other) * self

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._lift(other) / self

    def __rpow__(self, other: Any) -> Tensor:
        return self._lift(other) ** self

    # elementwise unary ops: value and local derivative

    def _unary(self, value: np.ndarray, derivative: np.ndarray, op: str) -> Tensor:
        out = self._child(value, (self,), op)

        def _backward():
            self.grad += out.grad * derivative

        out._backward = _backward
        return out

    def exp(self) -> Tensor:
        e = np.exp(self.data)
        return self._unary(e, e, "exp")

    def log(self) -> Tensor:
        return self._unary(np.log(self.data), 1.0 / self.data, "log")

    def tanh(self) -> Tensor:
        t = np.tanh(self.data)
        return self._unary(t, 1.0 - t * t, "tanh")

    def relu(self) -> Tensor:
        positive = self.data > 0
        return self._unary(
            np.where(positive, self.data, 0.0), positive.astype(self.data.dtype), "relu"
        )

    def sigmoid(self) -> Tensor:
        s = np.exp(-np.logaddexp(0.0, -self.data))  # 1 / (1 + e^-x) without overflow
        return self._unary(s, s * (1.0 - s), "sigmoid")

    def gelu(self) -> Tensor:
        x = self.data
        t = np.tanh(GELU_C * (x + GELU_K * x**3))
        derivative = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1 + 3 * GELU_K * x**2)
        return self._unary(0.5 * x * (1.0 + t), derivative, "gelu")

    # linear algebra, reductions and shapes

    def __matmul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        out = self._child(self.data @ other.data, (self, other), "@")

        def _backward():
            # a vector operand acts as a (1, k) row on the left or a (k, 1) column on the right
            a = self.data[None, :] if self.ndim == 1 else self.data  # (..., n, k)
            b = other.data[:, None] if other.ndim == 1 else other.data  # (..., k, m)
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            g = out.grad.reshape((*batch, a.shape[-2], b.shape[-1]))  # (..., n, m)
            self.grad += _unbroadcast(g @ b.swapaxes(-1, -2), a.shape).reshape(self.shape)
            other.grad += _unbroadcast(a.swapaxes(-1, -2) @ g, b.shape).reshape(other.shape)

        out._backward = _backward
        return out

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._lift(other) @ self

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = self._child(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            g = out.grad if keepdims else np.expand_dims(out.grad, _axes(axis, self.ndim))
            self.grad += np.broadcast_to(g, self.shape)

        out._backward = _backward
        return out

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        total = self.sum(axis, keepdims)
        return total * (total.data.size / self.data.size)

    def reshape(self, *shape: Any) -> Tensor:
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], Integral) else shape
        out = self._child(self.data.reshape(shape), (self,), "reshape")

        def _backward():
            self.grad += out.grad.reshape(self.shape)

        out._backward = _backward
        return out

    def transpose(self, *axes: Any) -> Tensor:
        axes = axes[0] if len(axes) == 1 and not isinstance(axes[0], Integral) else axes
        axes = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        out = self._child(self.data.transpose(axes), (self,), "transpose")

        def _backward():
            self.grad += out.grad.transpose(np.argsort(axes))

        out._backward = _backward
        return out

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        out = self._child(self.data[index], (self,), "getitem")

        def _backward():
            np.add.at(self.grad, index, out.grad)

        out._backward = _backward
        return out

    def log_softmax(self, axis: int = -1) -> Tensor:
        shifted = self.data - self.data.max(axis=axis, keepdims=True)
        out = self._child(
            shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True)), (self,), "log_softmax"
        )

        def _backward():
            softmax = np.exp(out.data)
            self.grad += out.grad - softmax * out.grad.sum(axis=axis, keepdims=True)

        out._backward = _backward
        return out

    # the backward pass

    def backward(self, gradient: Any = None) -> None:
        """Accumulate d(self)/d(node) into the ``grad`` of every node self depends on.

        Parameters
        ----------
        gradient : array-like, optional
            The upstream gradient dL/d(self), of self's shape; ones if omitted, which
            needs a single-element self.
        """
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a single-element tensor, "
                    f"not shape {self.shape}"
                )
            gradient = np.ones_like(self.data)
        gradient = np.broadcast_to(np.asarray(gradient, dtype=self.data.dtype), self.shape)
        order = _topological_order(self)
        for node in order:
            if node._parents:  # intermediate: recompute; leaves accumulate
                node.grad = np.zeros_like(node.data)
        self.grad += gradient
        for node in reversed(order):
            node._backward()

    def zero_grad(self) -> None:
        """Reset ``grad`` to zeros."""
        self.grad = np.zeros_like(self.data)

    def __repr__(self) -> str:
        return f"Tensor({self.data!r})"


def cross_entropy(logits: Tensor, targets: Iterable[int] | np.ndarray) -> Tensor:
    """Mean negative log-likelihood of integer class ``targets`` under softmax(``logits``).

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_classes)
    targets : array-like of int, shape (n_samples,)

    Returns
    -------
    Tensor
        A scalar: ``-mean_i log_softmax(logits)[i, targets[i]]``.
    """
    targets = np.asarray(targets, dtype=np.intp)
    log_p = logits.log_softmax(axis=-1)  # (n_samples, n_classes)
    return -log_p[np.arange(len(targets)), targets].mean()
