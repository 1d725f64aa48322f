"""GPUs: NVML sampling, the sampler container, who runs on each GPU, the ledger that hands them out."""
