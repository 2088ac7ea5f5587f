"""The 18 protein understanding benchmarks of xTrimoPGLM, and speed benchmarks against named peers."""
