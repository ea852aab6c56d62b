"""A small convolutional network for 28 x 28 grey images (MNIST, Fashion-MNIST): Conv2D and MaxPooling2D
blocks, Flatten, a Dense layer and a softmax output.

``input_shape`` (``(28, 28)``, or ``(28, 28, 1)`` with ``dataset.channels: true``) and ``n_classes`` are
given from the data. Uncompiled: the study compiles it (sparse categorical cross-entropy, its optimizer).
"""

import keras


def build_model(filters=16, n_blocks=2, n_neurons=64, dropout=0.0, input_shape=(28, 28), n_classes=10):
    model = keras.Sequential([keras.Input(shape=input_shape)])
    if len(input_shape) == 2:  # grey images without a channel axis
        model.add(keras.layers.Reshape((*input_shape, 1)))
    for block in range(n_blocks):
        model.add(keras.layers.Conv2D(filters * 2**block, 3, padding="same", activation="relu"))
        model.add(keras.layers.MaxPooling2D())
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(n_neurons, activation="relu"))
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    return model
