"""The packaged Hydra configs (YAML files only; this file makes the folder a package to install)."""
