"""Stacked members: K MLPs trained as one Keras model, and the scores of each member."""
