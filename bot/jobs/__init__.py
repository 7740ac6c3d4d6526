"""rq jobs: thin functions that open resources from the settings and call the domain."""
