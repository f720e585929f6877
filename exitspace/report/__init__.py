"""The run report: results JSON, figures, Markdown and HTML; and the whole flow of `exitspace run`."""
