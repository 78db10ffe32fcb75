"""Property-based conformance suite for broadcasting, masked_fill and masked softmax.

`rules` is the pure-Python oracle; the test modules are the properties.
"""
