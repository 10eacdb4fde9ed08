"""Livepatch's control plane (kernel/livepatch/): klp_ops and func stacks, and later the rest."""
