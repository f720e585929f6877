"""Train stage: joint training of backbone and exit heads, QAT per precision pair, exit tables."""
