"""bench.reports: layouts, renderings and the report page."""
