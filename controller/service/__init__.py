"""Use cases behind the API: the generic resource engine and its transactions."""
