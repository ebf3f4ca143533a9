"""Rendering for operations and deploys: the one Jinja setup of
facts/_templates.py (the lowest layer, so facts render their shell too)."""

from facts._templates import TEMPLATES, render_template

__all__ = ["TEMPLATES", "render_template"]
