"""Presentation: terminal rendering, SVG diagrams and the styles both web faces share."""
