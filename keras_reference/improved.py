"""The improved preset in Keras: the same network, augmentation ranges and schedule as the
Lightning port's ``configs/improved.yaml`` (docs/improved.md, docs/parity.md #13).

====================  ==========  ===================  =========
Keras layer           name        output shape         params
====================  ==========  ===================  =========
RandomRotation(±10°)  ``rotate``  (None, 28, 28, 1)    0
RandomZoom(±10%)      ``zoom``    (None, 28, 28, 1)    0
RandomTranslation     ``shift``   (None, 28, 28, 1)    0
Conv2D(32, 3x3, same) ``conv1``   (None, 28, 28, 32)   288
BatchNormalization    ``bn1``     (None, 28, 28, 32)   128 (64 trainable)
ReLU, MaxPool(2x2)    ``relu1``…  (None, 14, 14, 32)   0
… blocks 2 and 3      64, 128     (None, 3, 3, 128)    18,432 + 256, 73,728 + 512
Flatten, Dense(128)   ``fc1``     (None, 128)          147,584
Dropout(0.4)          ``dropout`` (None, 128)          0
Dense(10, softmax)    ``fc2``     (None, 10)           1,290
====================  ==========  ===================  =========

The random layers act in training only, on the batch where it already is, as the port's
``augment.py`` does; batch norm uses torch's conventions, written the Keras way
(momentum 0.9 = torch's 0.1, epsilon 1e-5).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_reference.model import INPUT_SHAPE

LR, GAMMA = 2e-3, 0.8  # lr = 0.002 * 0.8 ** epoch
BATCH_SIZE, EPOCHS, PATIENCE = 128, 15, 4
AUGMENT = {"rotation": 10.0, "zoom": 0.1, "shift": 0.1}


def build_improved_model(
    num_classes: int = 10,
    filters: int = 32,
    hidden: int = 128,
    dropout: float = 0.4,
    augment: dict[str, float] | None = None,
    jit_compile: bool | str = "auto",
) -> keras.Sequential:
    """Build and compile the improved network (Adam lr 0.002, epsilon 1e-7).

    Args:
        num_classes: Outputs.
        filters: Filters of the first block; the next two double.
        hidden: Units of the hidden dense layer.
        dropout: Dropout before the last layer.
        augment: ``rotation`` (degrees), ``zoom`` and ``shift`` (shares); None is
            :data:`AUGMENT`, zeros leave the layer out.
        jit_compile: ``compile``'s XLA switch.
    """
    aug = AUGMENT if augment is None else augment
    model = keras.Sequential(name="improved_cnn")
    model.add(keras.Input(shape=INPUT_SHAPE))
    fill = {"fill_mode": "constant", "fill_value": 0.0, "interpolation": "bilinear"}
    if aug["rotation"]:
        model.add(layers.RandomRotation(aug["rotation"] / 360, name="rotate", **fill))
    if aug["zoom"]:
        model.add(layers.RandomZoom((-aug["zoom"], aug["zoom"]), name="zoom", **fill))
    if aug["shift"]:
        model.add(layers.RandomTranslation(aug["shift"], aug["shift"], name="shift", **fill))
    for i, f in enumerate((filters, 2 * filters, 4 * filters), start=1):
        model.add(layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}"))
        model.add(layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i}"))
        model.add(layers.Activation("relu", name=f"relu{i}"))
        model.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(hidden, activation="relu", name="fc1"))
    model.add(layers.Dropout(dropout, name="dropout"))
    model.add(layers.Dense(num_classes, activation="softmax", name="fc2"))
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=LR, epsilon=1e-7),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def schedule(epoch: int, lr: float) -> float:
    """``LearningRateScheduler``'s function: torch's ExponentialLR(gamma=0.8) per epoch."""
    return LR * GAMMA**epoch
