"""Articles: Markdown files parsed, validated and rendered, and built into search indexes."""
