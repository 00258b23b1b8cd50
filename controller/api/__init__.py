"""HTTP layer of the northbound API: routing, body reading, rendering, errors."""
