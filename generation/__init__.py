"""De novo sequence generation with the GLM objective: sampling, KV-cached decoding, the Generator API."""
