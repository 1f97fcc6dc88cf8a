"""``torch_npu.testing`` for the drop-in mode: a TestCase and the device decorators."""
