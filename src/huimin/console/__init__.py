"""The console (`/console`): server-rendered pages for the government roles, the operator and merchants.

Jinja2 templates, a little vanilla JavaScript for progressive enhancement, Apache ECharts for charts and
the district map, every asset served by the platform itself. See docs/console.md.
"""
