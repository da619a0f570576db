"""Dashboard widgets: keyed tables and Line-API stream views."""
