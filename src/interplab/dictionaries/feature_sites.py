"""Feature sites live in `interplab.sites` (`FeatureSite`, `is_feature_site`, `parse_any`);
this module re-exports them for the dictionaries package."""

from interplab.sites import FeatureSite, is_feature_site, parse_any

__all__ = ["FeatureSite", "is_feature_site", "parse_any"]
