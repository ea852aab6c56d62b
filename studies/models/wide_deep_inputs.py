"""Wide & Deep with two inputs (Hands-On ML, chapter 10): some features go straight to the output (the wide
path), others through ``n_hidden`` Dense layers (the deep path); both are concatenated before the output.

The inputs are named: the study's ``model.inputs`` maps each name to its columns, and ``input_shape`` is
given as a dict of shapes by input name. Uncompiled: the study compiles it (mse, its optimizer).
"""

import keras


def build_model(n_hidden=2, n_neurons=30, activation="relu", input_shape=None):
    input_wide = keras.Input(shape=input_shape["wide"], name="wide")
    input_deep = keras.Input(shape=input_shape["deep"], name="deep")
    hidden = input_deep
    for _ in range(n_hidden):
        hidden = keras.layers.Dense(n_neurons, activation=activation)(hidden)
    concat = keras.layers.Concatenate()([input_wide, hidden])
    output = keras.layers.Dense(1)(concat)
    return keras.Model(inputs=[input_wide, input_deep], outputs=output)
