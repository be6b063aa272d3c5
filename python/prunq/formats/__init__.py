"""Packed weight formats: how compressed weights are laid out for the kernels that read them."""
