"""Techniques: pure functions over a Model that return result objects (one file each)."""

from interplab.techniques.dla import DLAResult, direct_logit_attribution
from interplab.techniques.lens import LensResult, logit_lens

__all__ = ["DLAResult", "LensResult", "direct_logit_attribution", "logit_lens"]
