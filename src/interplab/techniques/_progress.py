"""The progress display every batched sweep shows; it lives in `interplab.progress`."""

from interplab.progress import progress_bar

__all__ = ["progress_bar"]
