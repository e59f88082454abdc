"""MNIST Studio's core: data, preprocessing, models, training, evaluation, artifacts.

Never imports streamlit; the NumPy model's path never imports TensorFlow.
"""
