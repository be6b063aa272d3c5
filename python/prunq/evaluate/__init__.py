"""What compression gained and lost on a real model: size, latency and fidelity (prunq compress)."""
