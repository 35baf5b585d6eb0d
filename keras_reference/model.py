"""The tutorial's Keras CNN, built and compiled exactly as the tutorial does.

Layer order and sizes mirror the tutorial's ``Sequential`` (see ``docs/tutorial.md``)
and ``lightning_mnist.model.TutorialCNN`` (conv, pool, fc1, dropout, fc2). The Keras layers get
the same names as the torch modules so that weight-transfer code can pair them by name:

====================  ==========  ===================  =========
Keras layer           name        output shape         params
====================  ==========  ===================  =========
Conv2D(32, 3x3, relu) ``conv``    (None, 26, 26, 32)   320
MaxPooling2D(2x2)     ``pool``    (None, 13, 13, 32)   0
Flatten               ``flatten`` (None, 5408)         0
Dense(32, relu)       ``fc1``     (None, 32)           173,088
Dropout(0.5)          ``dropout`` (None, 32)           0
Dense(10, softmax)    ``fc2``     (None, 10)           330
====================  ==========  ===================  =========

Total: 173,738 parameters.
"""

from __future__ import annotations

import keras  # the package __init__ has already pinned KERAS_BACKEND
from keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D

# Keras 3 substitutions for the tutorial's Keras 1/2 imports:
# - `keras.layers.core` (Dense, Dropout, Flatten) no longer exists -> `keras.layers`.
# - `keras.layers.convolutional.Convolution2D` no longer exists -> `keras.layers.Conv2D`
#   (Convolution2D was the Keras 1 alias of Conv2D).
# - `input_shape=` on the first layer still works but warns in Keras 3, so an explicit
#   `keras.Input(shape=(28, 28, 1))` carries the same input shape.

INPUT_SHAPE: tuple[int, int, int] = (28, 28, 1)  # NHWC without N: Keras is channels-last.


def build_model(num_classes: int = 10, jit_compile: bool | str = "auto") -> keras.Sequential:
    """Build and compile the tutorial's Sequential CNN.

    Args:
        num_classes: Size of the softmax output layer (10 for MNIST and Fashion-MNIST).
        jit_compile: ``compile``'s XLA switch. The tutorial leaves Keras's ``"auto"``, which
            on a CPU-only TensorFlow means no XLA; ``True`` is the tuned-Keras benchmark row.

    Returns:
        The compiled model: ``loss='categorical_crossentropy', optimizer='adam',
        metrics=['accuracy']``, i.e. Adam with Keras defaults (lr 1e-3, epsilon 1e-7).
    """
    model = keras.Sequential(name="tutorial_cnn")
    model.add(keras.Input(shape=INPUT_SHAPE))
    model.add(Conv2D(32, (3, 3), activation="relu", name="conv"))
    model.add(MaxPooling2D(pool_size=(2, 2), name="pool"))
    model.add(Flatten(name="flatten"))
    model.add(Dense(32, activation="relu", name="fc1"))
    model.add(Dropout(0.5, name="dropout"))
    # The softmax is part of the model; Keras recovers the logits inside the TF loss
    # (the torch port returns logits instead, docs/parity.md #6).
    model.add(Dense(num_classes, activation="softmax", name="fc2"))
    model.compile(
        loss="categorical_crossentropy",
        optimizer="adam",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model
