"""Reports: plotly figures shared with the dashboard, and self-contained HTML and Markdown reports."""
