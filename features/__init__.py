"""The data contract and the one feature path shared by training, predict and serve.

Pure numpy: no I/O, no frameworks, nothing else of ours imported.
"""
