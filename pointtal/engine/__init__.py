"""Engine: data assembly from a config, the training loop, inference, checkpoints, logs and DDP.

The engine drives any `pointtal.methods.Method` through its contract and knows no method by name.
"""
