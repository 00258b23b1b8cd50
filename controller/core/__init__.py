"""The pure resource model: kinds, paths, tolerant wire models, trees, value types."""
