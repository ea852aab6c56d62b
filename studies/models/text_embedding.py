"""The IMDB model of TensorFlow's text-classification tutorial: padded word indices into an Embedding, averaged
over the review, then a small Dense layer and a sigmoid output.

``vocab_size`` and ``sequence_length`` are given from the data (``dataset.num_words``, ``dataset.max_length``).
The factory leaves the model uncompiled: the study compiles it (binary cross-entropy, its optimizer and
learning rate).
"""

import keras


def build_model(embedding_dim=16, n_neurons=16, dropout=0.0, vocab_size=10000, sequence_length=256):
    model = keras.Sequential([
        keras.Input(shape=(sequence_length,)),
        keras.layers.Embedding(vocab_size, embedding_dim),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(n_neurons, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    return model
