"""app: the Gradio search page over a catalog, with its heatmaps (README, docs/SECURITY.md)."""
