"""Triton kernels of prunq, one module per op family. Installed as prunq.triton_kernels."""
