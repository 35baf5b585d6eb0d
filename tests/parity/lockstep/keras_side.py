"""The Keras side: the tutorial model of ``keras_reference``, trained by the body of Keras's
own ``train_step`` (keras/src/backend/tensorflow/trainer.py) with the mask injected.

The step is a ``tf.function`` as in ``model.fit``: in a graph, the softmax output keeps its
logits, so ``categorical_crossentropy`` is computed from them (docs/parity.md #6), as in fit.
The layers are called one by one so that the Dropout layer is replaced by the shared mask;
the loss is the compiled one (mean over the batch) and the optimizer the compiled Adam.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_reference.model import build_model

WEIGHTED = ("conv", "fc1", "fc2")
TRUNK = ("conv", "pool", "flatten", "fc1")  # the layers before the dropout point


def keras_start(seed: int) -> dict[str, tuple[np.ndarray, ...]]:
    """Keras's own initial weights (Glorot-uniform kernels, zero biases) after
    ``keras.utils.set_random_seed(seed)``: ``{"conv": (kernel, bias), "fc1": ..., "fc2": ...}``."""
    keras.utils.set_random_seed(seed)
    model = build_model()
    return {name: tuple(model.get_layer(name).get_weights()) for name in WEIGHTED}


class KerasSide:
    """The tutorial model from ``start``, stepping on shared batches and masks."""

    def __init__(self, start: dict[str, tuple[np.ndarray, ...]]) -> None:
        self.model = build_model()
        for name, arrays in start.items():
            self.model.get_layer(name).set_weights(list(arrays))
        self.trunk = [self.model.get_layer(name) for name in TRUNK]
        self.head = self.model.get_layer("fc2")
        self.model.optimizer.build(self.model.trainable_variables)
        self._step = tf.function(self._train_step, jit_compile=False, reduce_retracing=True)

    def hidden(self, x: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        """fc1's ReLU output times the shared mask: what Dropout(0.5) would pass on."""
        for layer in self.trunk:
            x = layer(x, training=True)
        return x * keep

    def _loss_and_grads(self, x: tf.Tensor, y: tf.Tensor, keep: tf.Tensor) -> tuple:
        model = self.model
        with tf.GradientTape() as tape:
            y_pred = self.head(self.hidden(x, keep), training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        return loss, tape.gradient(loss, model.trainable_variables)

    def _train_step(self, x: tf.Tensor, y: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
        loss, grads = self._loss_and_grads(x, y, keep)
        self.model.optimizer.apply(grads, self.model.trainable_variables)
        return loss

    def gradients(self, x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> list[np.ndarray]:
        """The step's gradients, without stepping, in Keras layout (conv kernel, bias, fc1
        kernel, bias, fc2 kernel, bias); in a graph, as the step computes them."""
        _, grads = tf.function(self._loss_and_grads)(*self._tensors(x, y, keep))
        return [g.numpy() for g in grads]

    @staticmethod
    def _tensors(x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> tuple:
        onehot = np.eye(10, dtype=np.float32)[y]
        return tf.constant(x[..., None]), tf.constant(onehot), tf.constant(keep)

    def step(self, x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> float:
        """One training step on images (N, 28, 28), labels (N,) and a mask (N, 32)."""
        return float(self._step(*self._tensors(x, y, keep)))

    def weights(self) -> dict[str, tuple[np.ndarray, ...]]:
        """The current weights in Keras layout, by layer name."""
        return {name: tuple(self.model.get_layer(name).get_weights()) for name in WEIGHTED}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes (dropout off) for images (N, 28, 28)."""
        return self.model.predict(x[..., None], batch_size=1000, verbose=0).argmax(axis=1)
