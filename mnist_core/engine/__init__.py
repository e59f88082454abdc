"""The NumPy engine: layers written once (:mod:`.layers`), a sequential network over them
(:mod:`.network`), optimisers (:mod:`.optim`), the ``.keras`` reader and writer
(:mod:`.keras_file`) and the ONNX graph for big batches (:mod:`.onnx_graph`). Never
imports TensorFlow, Keras or streamlit."""
