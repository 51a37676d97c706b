"""Reports built from stored results: tables, README regeneration, comparisons, regression gate, plots."""
