"""The learned node scorer: a Deep Q-Network over (pod, node) features (torch)."""
