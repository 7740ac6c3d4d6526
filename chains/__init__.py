"""The PR graph: models, link extraction, chain extension, sources and persistence."""
