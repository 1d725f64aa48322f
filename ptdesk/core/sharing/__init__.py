"""GPU sharing: who holds each GPU, moving an experiment to other GPUs, the queue, reservations."""
