"""Evaluation reports: load evaluated runs, compare methods statistically, plot, write Markdown.

Modules:
    runs: load ``<save_path>/eval`` folders (``per_file.csv`` + ``summary.json``).
    stats: confidence intervals, paired comparisons, Holm correction.
    tensorboard: read training scalars from TensorBoard logs (or a checkpoint's history).
    plots: matplotlib figures (PNG).
    markdown: the report's Markdown sections.
"""
