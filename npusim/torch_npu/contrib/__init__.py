"""Contrib modules with torch_npu names."""
