"""Browser fixtures for the dashboard tests (see ``dashboard_support``)."""

from dashboard_support import browser, page

__all__ = ["browser", "page"]
